//! The built-in demo MCP server: the fixture for tests and quickstart.
