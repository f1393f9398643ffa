package station

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/station/config"
	"github.com/lifeboat-updater/lifeboat/unitdata"
)

const usage = `usage: lifeboat-station [-config FILE]     run the station
       lifeboat-station check -config FILE    check the configuration, keys and bundles, then exit
       lifeboat-station keygen -o NAME        write a station key pair NAME.key, NAME.pub (unit data only)

The default configuration is /etc/lifeboat-station/station.yaml; docs/station.md describes it.
`

// DefaultConfig is where the station looks for its configuration.
const DefaultConfig = "/etc/lifeboat-station/station.yaml"

var errUsage = errors.New("usage")

// Main runs the lifeboat-station command and returns its exit code: 0,
// 1 for an error, 2 for a usage mistake. Every error is one line on stderr.
// SIGINT and SIGTERM stop the station cleanly.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, args, stdout, stderr)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "lifeboat-station: %v\n", err)
	if errors.Is(err, errUsage) {
		fmt.Fprint(stderr, usage)
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "run"
	if len(args) > 0 && (args[0] == "check" || args[0] == "keygen" || args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgFile := fs.String("config", DefaultConfig, "configuration file")
	out := fs.String("o", "", "keygen: output name")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "keygen":
		if *out == "" {
			return fmt.Errorf("%w: keygen needs -o NAME", errUsage)
		}
		return keygen(*out, stdout)
	}
	cfg, err := config.Load(*cfgFile)
	if err != nil {
		return err
	}
	logger := log.New(stderr, "", log.LstdFlags|log.Lmicroseconds)
	st, err := Open(ctx, cfg, logger.Printf)
	if err != nil {
		return err
	}
	if cmd == "check" {
		defer st.Close()
		fmt.Fprintf(stdout, "station %s: configuration, keys and %d bundles are good; units reach it at %s\n", cfg.Name, len(st.bundles), st.URL())
		return nil
	}
	defer st.Close()
	return st.Serve(ctx)
}

// keygen writes a station key pair, marked for unit data: a bundle trust
// store refuses it and lifeboat-bundle will not sign with it.
func keygen(name string, stdout io.Writer) error {
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		return err
	}
	kb, err := unitdata.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	pb, err := unitdata.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	// O_EXCL: never overwrite a key by accident.
	f, err := os.OpenFile(name+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(kb); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(name+".pub", pb, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "station key %s: %s.key (keep it on the station), %s.pub (into the rescue's station-keys)\n", bundle.KeyID(pub), name, name)
	return nil
}
