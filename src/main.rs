// mimalloc instead of the system allocator: a request allocates and frees many small JSON
// values across worker threads, and glibc malloc's per-arena locking and consolidation took a
// fifth of the server's CPU under load (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cityos::cli::main()
}
