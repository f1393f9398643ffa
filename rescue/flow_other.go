//go:build !linux

package rescue

// syncFS does nothing where the rescue does not run.
func syncFS() {}
