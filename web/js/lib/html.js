// Preact + htm: components as tagged templates, no build step. Everything the pages
// need from the view library comes through this module.
import { h, render, Fragment } from "../../vendor/preact.module.js";
import htm from "../../vendor/htm.module.js";
export { useState, useEffect, useMemo, useRef, useCallback, useErrorBoundary } from "../../vendor/preact-hooks.module.js";

export const html = htm.bind(h);
export { h, render, Fragment };
