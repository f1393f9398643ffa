package rescue

import "golang.org/x/sys/unix"

// syncFS flushes every file system (sync(2)).
func syncFS() { unix.Sync() }
