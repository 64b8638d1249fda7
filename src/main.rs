//! The `micloudfs` command; see `cli`.

fn main() -> std::process::ExitCode {
    micloudfs::cli::run()
}
