"""The plain records stores hand to the service and the shells, one module per
concern: what a stored key, destination, delivery, sync, history row or experiment
arm is, whatever engine holds it.  No SQL and no engine here."""
