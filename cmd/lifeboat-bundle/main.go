// Command lifeboat-bundle makes, inspects and verifies Lifeboat bundles on a
// build host. See docs/cli.md.
package main

import (
	"context"
	"os"

	"github.com/lifeboat-updater/lifeboat/internal/bundletool"
)

func main() {
	os.Exit(bundletool.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
