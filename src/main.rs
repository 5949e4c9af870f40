//! The `rkube` binary: everything is in the library's [`rkube::cli`].

/// mimalloc rather than glibc's malloc: the server's work is mostly short-lived JSON trees allocated and
/// freed across many threads, where glibc's arenas spent about a third of the server's CPU (perf, 2,000
/// pods scheduled on 1,000 hollow nodes) and kept freed memory resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    rkube::cli::main()
}
