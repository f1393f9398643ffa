//go:build !linux

package mdns

import "errors"

// listen needs IP_PKTINFO as Linux has it; the rescue runs on Linux only.
func listen([]Interface, func(string, ...any)) (packetConn, []Interface, error) {
	return nil, nil, errors.New("mdns: the responder runs on Linux only")
}
