// Command adtracker is the video-ad event tracker: `serve` runs the HTTP service, `migrate` applies database migrations, `seed` adds
// demo ads, and `healthcheck` probes a running server (for container health checks).
package main

import (
	"fmt"
	"os"
)

const usage = `usage: adtracker <command> [flags]

commands:
  serve        run the HTTP service (migrates first unless migrate.on_start=false)
  migrate      apply pending Postgres and ClickHouse migrations, then exit
  seed         insert demo ads into an empty catalogue, then exit
  healthcheck  GET /healthz of the local server; exit 0 when it answers 200
  loadgen      send realistic event traffic, report rate and latency, --verify in ClickHouse (loadgen -h)
  spill ls     list the spill under ingest.data_dir: records waiting for replay, ack position, damage
  deadletter ls | replay [FILE...]
               list dead-lettered batches, or insert them into ClickHouse again (stored events are skipped)

common flags:
  --config FILE        YAML config file (keys as in README.md); env ADTRACKER_* overrides it
  --log-format FORMAT  json (default) or console
  --log-level LEVEL    debug, info, warn, error
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "migrate":
		err = migrate(args)
	case "seed":
		err = seed(args)
	case "healthcheck":
		err = healthcheck(args)
	case "loadgen":
		err = loadgen(args)
	case "spill":
		err = spillCmd(args)
	case "deadletter":
		err = deadletterCmd(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "adtracker: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		os.Exit(1)
	}
}
