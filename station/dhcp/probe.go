package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// Probe sends a DHCPDISCOVER on iface and listens for offers for wait. An
// offer means another DHCP server serves this network: Probe returns
// ErrOtherServer, naming it. It returns nil when nothing answered.
//
// The discover carries the interface's own MAC (a NIC drops unicast
// offers to any other) and asks for a broadcast answer; it requests
// nothing, so the other server only ever makes an offer.
func Probe(ctx context.Context, iface string, wait time.Duration) error {
	c, err := nclient4.New(iface, nclient4.WithTimeout(wait), nclient4.WithRetry(1))
	if err != nil {
		return fmt.Errorf("dhcp: probing %s: %w", iface, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, wait+time.Second)
	defer cancel()
	offer, err := c.DiscoverOffer(ctx, dhcpv4.WithBroadcast(true))
	if err == nil {
		who := offer.ServerIdentifier()
		if who == nil {
			who = offer.ServerIPAddr
		}
		return fmt.Errorf("%w: %s offered %s on %s: refusing to serve DHCP there (a station must never hand out addresses on an office network)",
			ErrOtherServer, ipString(who), ipString(offer.YourIPAddr), iface)
	}
	if errors.Is(err, nclient4.ErrNoResponse) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return fmt.Errorf("dhcp: probing %s: %w", iface, err)
}

func ipString(ip net.IP) string {
	if ip == nil {
		return "?"
	}
	return ip.String()
}
