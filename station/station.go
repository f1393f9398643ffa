// Package station is a factory station: it reads the configuration,
// opens the records, checks the bundles and keys, and runs the line's
// services (the unit protocol, bundles and the line page over HTTP; DHCP
// and TFTP on the line's interface). cmd/lifeboat-station is its command.
package station

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/station/config"
	"github.com/lifeboat-updater/lifeboat/station/dhcp"
	"github.com/lifeboat-updater/lifeboat/station/identity"
	"github.com/lifeboat-updater/lifeboat/station/live"
	"github.com/lifeboat-updater/lifeboat/station/server"
	"github.com/lifeboat-updater/lifeboat/station/store"
	"github.com/lifeboat-updater/lifeboat/station/tftp"
	"github.com/lifeboat-updater/lifeboat/station/web"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

// Station is a station ready to serve.
type Station struct {
	cfg   *config.Config
	logf  func(string, ...any)
	store store.Store
	hub   *live.Hub

	http    *http.Server
	ln      net.Listener
	url     string
	dhcp    *dhcp.Server
	tftp    net.PacketConn
	bundles []server.Bundle
}

// Open checks everything and opens the listeners; nothing is served until
// Serve. It refuses to start, with one line saying why, when a bundle is
// not allowed, a key or the CA cannot be read, or another DHCP server
// answers on the line's interface.
func Open(ctx context.Context, cfg *config.Config, logf func(string, ...any)) (st *Station, err error) {
	s := &Station{cfg: cfg, logf: logf, hub: live.NewHub()}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	srvCfg := server.Config{Station: cfg.Name, Boards: cfg.Boards, Hub: s.hub, Logf: logf}
	if srvCfg.Pools.Serials, err = cfg.SerialRange(); err != nil {
		return nil, err
	}
	srvCfg.Pools.Scanned = cfg.Serials.Scanned
	if srvCfg.Pools.MACs, err = cfg.MACPool(); err != nil {
		return nil, err
	}
	kb, err := os.ReadFile(cfg.Path(cfg.StationKey))
	if err != nil {
		return nil, fmt.Errorf("station key: %w", err)
	}
	key, err := unitdata.ParsePrivateKey(kb)
	if err != nil {
		return nil, fmt.Errorf("station key %s: %w", cfg.StationKey, err)
	}
	srvCfg.Signer = bundle.Ed25519Signer{Key: key}
	if ca := cfg.FactoryCA; ca != nil {
		if srvCfg.CA, err = identity.LoadCA(cfg.Path(ca.Cert), cfg.Path(ca.Key), time.Duration(ca.Validity)); err != nil {
			return nil, err
		}
	}
	if s.bundles, err = s.openBundles(srvCfg); err != nil {
		return nil, err
	}
	srvCfg.Bundles = s.bundles
	if cfg.Postgres() {
		s.store, err = store.OpenPostgres(ctx, cfg.Database)
	} else {
		s.store, err = store.OpenSQLite(ctx, cfg.Path(cfg.Database))
	}
	if err != nil {
		return nil, err
	}
	srvCfg.Store = s.store
	if err := s.openNetwork(ctx); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	api := server.New(srvCfg)
	mux.Handle("/api/", api)
	mux.Handle("/bundles/", api)
	if root := cfg.Boot.TFTPRoot; root != "" {
		mux.Handle("GET /boot/", http.StripPrefix("/boot/", http.FileServer(http.Dir(cfg.Path(root)))))
		if cfg.Boot.IPXEScript != "" {
			mux.HandleFunc("GET /boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				http.ServeFile(w, r, filepath.Join(cfg.Path(root), filepath.Clean("/"+cfg.Boot.IPXEScript)))
			})
		}
	}
	mux.Handle("/", web.New(web.Config{Station: cfg.Name, Store: s.store, Hub: s.hub}))
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: nil}
	return s, nil
}

// openBundles opens every configured bundle, verifies its signature and
// checks it against the allow rules and the identity pools.
func (s *Station) openBundles(srvCfg server.Config) ([]server.Bundle, error) {
	var paths []string
	for _, k := range s.cfg.Bundles.Keys {
		paths = append(paths, s.cfg.Path(k))
	}
	trust, err := bundle.LoadTrustStore(paths...)
	if err != nil {
		return nil, err
	}
	var out []server.Bundle
	names := map[string]bool{}
	for _, f := range s.cfg.Bundles.Files {
		p := s.cfg.Path(f)
		b, err := openBundle(p, trust)
		if err != nil {
			return nil, err
		}
		if err := s.cfg.Allowed(b.Manifest); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if err := checkUnitFields(b.Manifest, srvCfg); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if names[b.Name] {
			return nil, fmt.Errorf("two bundles named %s: give each file its own name", b.Name)
		}
		names[b.Name] = true
		out = append(out, b)
	}
	return out, nil
}

func openBundle(path string, trust *bundle.TrustStore) (server.Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return server.Bundle{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return server.Bundle{}, err
	}
	br, err := bundle.NewReaderAt(f, fi.Size(), trust)
	if err != nil {
		return server.Bundle{}, fmt.Errorf("%s: %w", path, err)
	}
	return server.Bundle{Name: filepath.Base(path), Path: path, Size: fi.Size(), Manifest: br.Manifest()}, nil
}

// checkUnitFields makes sure the station can fill every per-unit field the
// bundle declares, so a unit never learns it at the end of its install.
func checkUnitFields(m *bundle.Manifest, c server.Config) error {
	for i := range m.UnitData {
		f := &m.UnitData[i]
		switch f.From {
		case bundle.UnitFromMAC:
			if c.Pools.MACs == nil || f.Index >= c.Pools.MACs.PerUnit {
				return fmt.Errorf("unit field %q wants MAC %d: configure macs with per_unit above %d", f.Name, f.Index, f.Index)
			}
		case bundle.UnitFromCertificate, bundle.UnitFromPrivateKey, bundle.UnitFromCA:
			if c.CA == nil {
				return fmt.Errorf("unit field %q wants the unit's %s: configure factory_ca", f.Name, f.From)
			}
		case bundle.UnitFromSerial:
			if r := c.Pools.Serials; r != nil {
				for _, n := range []uint64{r.First, r.Last} {
					if err := unitdata.CheckValue(f, r.Serial(n)); err != nil {
						return fmt.Errorf("the serial range does not fit the bundle: %w", err)
					}
				}
			}
		}
	}
	return nil
}

// openNetwork opens the HTTP listener and, on the line's interface, the
// DHCP and TFTP services.
func (s *Station) openNetwork(ctx context.Context) error {
	var err error
	if s.ln, err = net.Listen("tcp", s.cfg.Listen); err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	scheme := "http"
	if s.cfg.TLS != nil {
		scheme = "https"
	}
	s.url = s.cfg.URL
	if s.cfg.Interface == "" {
		if s.url == "" {
			s.url = scheme + "://" + s.ln.Addr().String()
		}
		return nil
	}
	prefix, err := interfaceAddr(s.cfg.Interface)
	if err != nil {
		return err
	}
	ip := prefix.Addr()
	if s.url == "" {
		s.url = scheme + "://" + net.JoinHostPort(ip.String(), port)
	}
	if d := s.cfg.DHCP; d != nil {
		if err := dhcp.Probe(ctx, s.cfg.Interface, time.Duration(d.Probe)); err != nil {
			return err
		}
		first, last, _ := s.cfg.DHCPRange()
		dc := dhcp.Config{Interface: s.cfg.Interface, ServerIP: ip, Prefix: prefix.Masked(), First: first, Last: last,
			Lease: time.Duration(d.Lease), StationURL: s.url, LeasesFile: s.cfg.Path(d.Leases), Logf: s.logf,
			Boot: dhcp.Boot{BIOS: s.cfg.Boot.BIOS, EFI64: s.cfg.Boot.EFI64, EFIArm64: s.cfg.Boot.EFIArm64, UBoot: s.cfg.Boot.UBoot}}
		if s.cfg.Boot.IPXEScript != "" {
			dc.Boot.IPXE = s.url + "/boot.ipxe"
		}
		if d.Router != "" {
			dc.Router = netip.MustParseAddr(d.Router)
		}
		for _, a := range d.DNS {
			dc.DNS = append(dc.DNS, netip.MustParseAddr(a))
		}
		conn, err := dhcp.Listen(s.cfg.Interface)
		if err != nil {
			return err
		}
		if s.dhcp, err = dhcp.New(dc, conn); err != nil {
			conn.Close()
			return err
		}
	}
	if s.cfg.Boot.TFTPRoot != "" {
		if s.tftp, err = net.ListenPacket("udp4", net.JoinHostPort(ip.String(), "69")); err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
	}
	return nil
}

// interfaceAddr returns the interface's first IPv4 address and prefix.
func interfaceAddr(name string) (netip.Prefix, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("interface %s: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("interface %s: %w", name, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			ip, _ := netip.AddrFromSlice(n.IP.To4())
			ones, _ := n.Mask.Size()
			return netip.PrefixFrom(ip, ones), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("interface %s has no IPv4 address: give it the station's (e.g. ip addr add 10.77.0.1/24 dev %s)", name, name)
}

// URL is how units reach the station.
func (s *Station) URL() string { return s.url }

// Addr is the HTTP listener's address.
func (s *Station) Addr() net.Addr { return s.ln.Addr() }

// Store is the station's records.
func (s *Station) Store() store.Store { return s.store }

// Serve runs the services until ctx ends or one fails.
func (s *Station) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() {
		var err error
		if t := s.cfg.TLS; t != nil {
			var cert tls.Certificate
			if cert, err = tls.LoadX509KeyPair(s.cfg.Path(t.Cert), s.cfg.Path(t.Key)); err == nil {
				s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
				err = s.http.ServeTLS(s.ln, "", "")
			}
		} else {
			err = s.http.Serve(s.ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	n := 1
	if s.dhcp != nil {
		n++
		go func() { errc <- s.dhcp.Serve() }()
	}
	if s.tftp != nil {
		n++
		t := &tftp.Server{Root: os.DirFS(s.cfg.Path(s.cfg.Boot.TFTPRoot)), Logf: s.logf}
		go func() { errc <- t.Serve(ctx, s.tftp) }()
	}
	s.logf("station %s: serving %s (%d bundles)%s", s.cfg.Name, s.url, len(s.bundles), s.services())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		n--
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.http.Shutdown(sctx)
	if s.dhcp != nil {
		s.dhcp.Close()
	}
	if s.tftp != nil {
		s.tftp.Close()
	}
	return err
}

func (s *Station) services() string {
	out := ""
	if s.dhcp != nil {
		out += ", DHCP on " + s.cfg.Interface
	}
	if s.tftp != nil {
		out += ", TFTP on " + s.cfg.Interface
	}
	return out
}

// Close releases what Open opened.
func (s *Station) Close() error {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.dhcp != nil {
		s.dhcp.Close()
	}
	if s.tftp != nil {
		s.tftp.Close()
	}
	if s.store != nil {
		return s.store.Close()
	}
	return nil
}
