// Package rescue is the rescue's job, run as PID 1 on package pid1: why
// it runs (the kernel command line, the button, the bootloader's
// transaction marker and boot counter, blank storage), and what it does
// about it: find a signed bundle, verify it, install it through the engine
// (package install), keep the bootloader contract, or wipe the state
// partitions for a factory reset. Main is what the rescue image's /init
// runs.
package rescue

import "github.com/lifeboat-updater/lifeboat/pid1"

// KeysDir is the rescue image's trust store: the public keys it accepts
// bundles from.
const KeysDir = "/etc/lifeboat/keys"

// Main is PID 1 of the rescue image: the platform (pid1.Run) running the
// install flow. It never returns.
func Main() { pid1.Run(pid1.Config{Flow: InstallFlow()}) }
