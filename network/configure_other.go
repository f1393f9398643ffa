//go:build !linux

package network

import "context"

// Configure needs Linux (netlink, packet sockets); elsewhere it returns
// ErrUnsupported.
func Configure(ctx context.Context, cfg Config) (*Result, error) {
	return nil, ErrUnsupported
}
