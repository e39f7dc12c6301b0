//! Argument parsing with the exit codes README promises: `--help`/`--version` print and exit 0;
//! any usage error is one line on stderr and exit 1, like every other error (cron mails one line).

use clap::error::ErrorKind;
use clap::Parser;

/// Exit status of every failure, usage errors included.
pub const EXIT_FAILURE: i32 = 1;

/// Parses the command line, or prints one line naming the problem and exits 1.
pub fn parse_or_exit<T: Parser>(tool: &str) -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => e.exit(),
        Err(e) => fail(tool, &usage_line(&e)),
    }
}

/// Prints `tool: error: message` on stderr and exits 1.
pub fn fail(tool: &str, message: &str) -> ! {
    eprintln!("{tool}: error: {message}");
    std::process::exit(EXIT_FAILURE)
}

/// The first line of clap's message, without its `error: ` prefix, and where to look next.
fn usage_line(e: &clap::Error) -> String {
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "no command given; see --help for the commands and examples".into();
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first}; see --help")
}
