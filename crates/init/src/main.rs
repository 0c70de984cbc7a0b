//! `lifeboat-init`: PID 1 of the Lifeboat initramfs. See the `init` crate documentation.
//!
//! Run as any other PID with `--plan [CMDLINE]` it prints the early boot steps and consoles for
//! that kernel command line (default: this machine's) and exits.

fn main() {
    if std::process::id() == 1 {
        init::boot::run();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--plan") => {
            let line = if args.len() > 1 {
                args[1..].join(" ")
            } else {
                std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
            };
            let c = init::cmdline::parse(&line);
            for s in init::steps::early_steps(&c) {
                println!("{s}");
            }
            for con in init::console::consoles(&c) {
                println!(
                    "run {:?} on /dev/{} with TERM={}",
                    con.program, con.device, con.term
                );
            }
            for p in &c.problems {
                println!("warning: {p}");
            }
        }
        _ => {
            eprintln!("lifeboat-init is PID 1 of the Lifeboat initramfs; use --plan [CMDLINE] to print its boot plan");
            std::process::exit(2);
        }
    }
}
