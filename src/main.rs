//! The `toolwarden` binary: everything lives in the library; this only hands over the arguments.

// The proxy allocates a handful of small buffers per relayed call (HTTP heads, JSON values, audit rows);
// glibc's malloc was a tenth of its CPU time per call, mimalloc about a third of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    toolwarden::cli::main()
}
