/** The part of every help text that says where the records are read. */
export const CONNECTION_HELP = `Where the records are (the app's database):
  --url <url>        PostgreSQL URL (default: the DATABASE_URL environment variable)
  --schema <name>    the schema of the app's DataSource (default: none, so the search_path: public)
  --partitioned      the partitioned table (the app's option partitioning), not idempotency_records
  --redis <url>      read the Redis store instead (redis:// or rediss://)
  --prefix <prefix>  key prefix of the Redis store (default: idempotency:)`;

export const OUTPUT_HELP = `Output:
  --json             machine-readable output on stdout
  -h, --help         this help`;

export const EXIT_CODES_HELP = `Exit codes: 0 done; 1 nothing found, or a failure whose message says what to do; 2 bad usage.`;
