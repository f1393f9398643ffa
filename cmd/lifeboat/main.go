// Command lifeboat is the device side of Lifeboat. As PID 1 in the rescue
// image it runs the rescue (package rescue); anywhere else it is the
// install/plan/verify/env command-line tool (docs/cli.md).
package main

import (
	"context"
	"os"

	"github.com/lifeboat-updater/lifeboat/internal/cli"
	"github.com/lifeboat-updater/lifeboat/rescue"
)

func main() {
	if os.Getpid() == 1 {
		rescue.Main() // never returns
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
