// Command lifeboat-station is the factory line's station: it network-boots
// blank boards, gives each its identity, serves the bundle and records
// every unit (docs/station.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/lifeboat-updater/lifeboat/station"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := station.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
