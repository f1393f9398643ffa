package rescue

import (
	"context"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/network"
	"github.com/lifeboat-updater/lifeboat/pid1"
	"github.com/lifeboat-updater/lifeboat/source"
)

// The network, brought up once per boot for the sources that need it.

// bringUpNetwork configures the network once per boot when a source needs
// it, and returns the sources worth trying: without a network, only the
// local ones. It fails only when no source is left.
func (in *Installer) bringUpNetwork(ctx context.Context, env *pid1.Env, srcs []source.Source, logf func(string, ...any)) ([]source.Source, error) {
	var local []source.Source
	for _, s := range srcs {
		if isLocal(s) {
			local = append(local, s)
		}
	}
	if len(local) == len(srcs) {
		if !in.netUp {
			env.Log.Printf("network: not needed (local sources only)")
		}
		return srcs, nil
	}
	if in.netUp {
		return srcs, nil
	}
	ip, err := ipParam(env.Cmdline)
	if err != nil {
		env.Log.Printf("%v; using DHCP", err)
		ip = nil
	}
	configure := in.Network
	if configure == nil {
		configure = network.Configure
	}
	start := time.Now()
	_, err = configure(ctx, network.Config{IP: ip, ResolvConf: network.DefaultResolvConf, Logf: logf})
	if err == nil {
		in.netUp = true
		env.Log.Printf("network: up in %v", time.Since(start).Round(time.Millisecond))
		return srcs, nil
	}
	if len(local) > 0 {
		env.Log.Printf("network: %s; trying the local sources only", bundle.OneLine(err.Error()))
		return local, nil
	}
	return nil, err
}

// isLocal reports whether a source needs no network.
func isLocal(s source.Source) bool {
	switch s.(type) {
	case *source.File, *source.Media:
		return true
	}
	return false
}

// ipParam returns the kernel's ip= (or nfsaddrs=) parameter, the last one
// winning as in the kernel; nil when there is none.
func ipParam(cmdline []pid1.Param) (*network.IPParam, error) {
	var val string
	found := false
	for _, p := range cmdline {
		if p.Key == "ip" || p.Key == "nfsaddrs" {
			val, found = p.Value, true
		}
	}
	if !found {
		return nil, nil
	}
	return network.ParseIP(val)
}
