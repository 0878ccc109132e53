//! The OpenSpec tools' limits and defaults, shared by the tools (`openspec`) and the resources
//! (`resources`), which read the same page sizes.

use crate::openspec::ArchiveStep;
use crate::openspec::unarchive::UnarchiveStep;

/// Limits and defaults of the OpenSpec tools.
#[derive(Clone, Copy, Debug)]
pub struct ToolOptions {
    /// Largest file `change_write` accepts, in bytes.
    pub max_write_bytes: usize,
    /// Lease length when the caller gives none, in seconds.
    pub default_lock_ttl_s: u64,
    /// Default page size of `change_list` and `changes://active`.
    pub page_size: usize,
    /// Largest page size a caller may ask for.
    pub max_page_size: usize,
    /// Test-only: `change_archive` aborts the process right after this step, so crash tests
    /// can kill a real server at each step of an archive. The server sets it only when
    /// `ENABLE_TEST_TOOLS=true` (from `TASK_MCP_TEST_CRASH_AT`); `None` by default.
    pub test_crash_at: Option<ArchiveStep>,
    /// Test-only, likewise for `change_unarchive` (`TASK_MCP_TEST_CRASH_AT=Unarchive:<step>`).
    pub test_crash_unarchive: Option<UnarchiveStep>,
}

impl Default for ToolOptions {
    fn default() -> Self {
        Self {
            max_write_bytes: 256 * 1024,
            default_lock_ttl_s: 3600,
            page_size: 50,
            max_page_size: 200,
            test_crash_at: None,
            test_crash_unarchive: None,
        }
    }
}
