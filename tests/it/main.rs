mod mcp_streams;
mod mcp_wire;
