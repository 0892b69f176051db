"""Segment's warehouse schema as every engine reads it: names spelled as Segment's
loader spells them, and the names it discards refused by name."""

from __future__ import annotations

import pytest

from segflow.store.segment import SegmentUnsupported, field_column, snakecase, trait_key


def test_names_are_spelled_as_segments_loader_spells_them() -> None:
    assert snakecase("Order Completed") == "order_completed"
    assert snakecase("productId") == "product_id"
    assert snakecase("CStringRef") == "cstring_ref"
    assert snakecase("2FA Enabled") == "2fa_enabled"
    assert snakecase("___$$Base64Encode") == "base64_encode"
    assert snakecase("f_pX9") == "f_p_x9"
    assert snakecase("caf\u00e9 cr\u00e8me") == "caf_cr_me"
    assert field_column("properties.productId") == "properties.product_id"
    assert field_column("properties.product.sku") == "properties.product_sku"
    assert field_column("context.device.type") == "context.device_type"
    assert field_column("context.userAgent") == "context.user_agent"
    assert field_column("traits.firstName") == "traits.first_name"
    assert trait_key("address.city") == "address_city"


def test_names_segment_discards_are_refused_by_name() -> None:
    with pytest.raises(SegmentUnsupported, match=r"'properties\.user_id'.*discards"):
        field_column("properties.user_id")
    with pytest.raises(SegmentUnsupported, match="trait 'timestamp'"):
        trait_key("timestamp")
