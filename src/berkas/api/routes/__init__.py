"""The HTTP routes, one module per resource; each function is thin: parse, call a use
case, render a schema."""
