//! The command line: subcommands, options and their help text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::timearg::{At, parse_at, parse_duration};

const EXIT_STATUS_CHECK: &str = "\
Exit status:
  0  the files would be served
  1  the store would refuse them (key mismatch, expired, not yet valid, encrypted or
     unsupported key, parse error, too large, not a regular file)
  2  usage error, or a file is missing or cannot be read";

const EXIT_STATUS_PROBE: &str = "\
Without --ca the served chain is printed but not verified (reported as unverified): the
point is to see what is served, trusted or not. With --ca it is verified against that
bundle, including the server name.

Is the renewed Secret what the endpoint serves?
  kubectl get secret -n prod api-tls -o json | certstore probe api:443 --against -

Exit status:
  0  handshake done (with --against: the served leaf is the file's or Secret's leaf)
  1  with --against: the served leaf differs from the file's (the output says which is
     newer), or the file holds no usable certificate (a broken generation on disk)
  2  usage error, a file that is missing or cannot be read, input that is no certificate
     to compare with (a Secret without tls.crt, another kind of object), or the endpoint
     cannot be reached or the handshake failed
With --interval: the status of the last probe.";

const EXIT_STATUS_WATCH: &str = "\
Exit status:
  0  stopped by SIGINT or SIGTERM
  1  the initial files are refused (the store cannot start)
  2  usage error, or an initial file is missing or cannot be read";

/// Check certificate files as certstore would, probe what a TLS endpoint serves, watch
/// rotations.
#[derive(Parser, Debug)]
#[command(name = "certstore", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a certificate, key and CA bundle exactly as the store would, once.
    ///
    /// Runs certstore's own reader and validator (not a copy) on the files and prints the
    /// leaf's subject, SANs, serial, validity, key type, chain length, the CA bundle's subjects
    /// and expiries, and either "would be served" or the reason it would be refused, naming
    /// the file. Key material is never printed.
    #[command(after_help = EXIT_STATUS_CHECK)]
    Check(CheckArgs),
    /// Handshake with a TLS endpoint and show the leaf it serves.
    ///
    /// Performs a real TLS handshake (rustls, TLS 1.2 or 1.3) and prints the served leaf:
    /// subject, SANs, serial, notBefore/notAfter, SHA-256 fingerprint. With --against, compares
    /// it with the leaf in a certificate file or a Kubernetes Secret: the "served != on disk"
    /// check. With --interval, keeps probing and prints each change.
    #[command(after_help = EXIT_STATUS_PROBE)]
    Probe(ProbeArgs),
    /// Run a store on the files and print every rotation and every refusal as it happens.
    ///
    /// One line per event (JSON lines with --json), starting with the generation served at
    /// start-up, until interrupted by SIGINT or SIGTERM.
    #[command(after_help = EXIT_STATUS_WATCH)]
    Watch(WatchArgs),
}

/// The files, as a store is configured with them.
#[derive(Args, Debug, Clone)]
pub struct FileArgs {
    /// PEM certificate chain, leaf first.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1, unencrypted).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// PEM CA bundle (client CAs on a server, roots on a client).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Largest accepted file, in bytes (the store's max_file_size).
    #[arg(long, value_name = "BYTES", default_value_t = certstore::DEFAULT_MAX_FILE_SIZE)]
    pub max_file_size: u64,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Judge the validity window at TIME instead of now: RFC 3339 (2027-01-31T00:00:00Z),
    /// @UNIX_SECONDS, or +DURATION / -DURATION from now (+30d: still valid in 30 days?).
    #[arg(long, value_name = "TIME", value_parser = parse_at, allow_hyphen_values = true)]
    pub at: Option<At>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The endpoint, HOST:PORT ([IPv6]:PORT for IPv6 addresses).
    #[arg(value_name = "HOST:PORT")]
    pub target: String,
    /// Server name to send (SNI) and to verify with --ca. Default: HOST.
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Compare the served leaf with the first certificate in CERT_FILE: a PEM file (e.g. the
    /// mounted tls.crt) or a Secret as `kubectl get secret -o json` or `-o yaml` prints it
    /// (its tls.crt), told apart by content; `-` reads standard input (once; a file is read
    /// again for every probe).
    #[arg(long, value_name = "CERT_FILE")]
    pub against: Option<PathBuf>,
    /// Verify the served chain against this PEM CA bundle. Without it the chain is not
    /// verified (there is no reliable system trust store in a container), only shown.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for endpoints that require client authentication.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Private key of --client-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Keep probing every DURATION (500ms, 10s, 5m, 1h) and print each change, until
    /// interrupted or --count probes are done.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// With --interval: stop after N probes.
    #[arg(long, value_name = "N", requires = "interval", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Give up on connecting or on the handshake after DURATION.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,
    /// Print JSON instead of text: one object per line (with --interval, one per change).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Re-read the files this often even without a file event (the store's safety net).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub reread_interval: Duration,
    /// Print JSON lines instead of text lines.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
