//! Talking MCP as a client: stdio children and Streamable HTTP, initialize, paginated tools/list.
