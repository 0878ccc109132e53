mod mcp_harness;
mod mcp_streams;
mod mcp_wire;
