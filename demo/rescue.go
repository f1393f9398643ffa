package demo

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/initramfs"
)

// RescuePkg is the command built as the rescue image's /init.
const RescuePkg = "github.com/lifeboat-updater/lifeboat/cmd/lifeboat"

// BuildTimeVar is the linker symbol that holds the rescue's clock floor
// (source.BuildTime).
const BuildTimeVar = "github.com/lifeboat-updater/lifeboat/source.BuildTime"

// RescueOptions say how to build a board's rescue image.
type RescueOptions struct {
	// Board is a built-in board profile's name (default Board). The
	// profile goes into the image, and its modules with it.
	Board string
	// KernelDir holds the kernel's modules: an unpacked kernel package
	// (holding lib/modules/KVER) or lib/modules/KVER itself.
	KernelDir string
	// Keys are the public keys (files or directories of *.pub) the rescue
	// trusts.
	Keys []string
	// OutDir receives rescue-BOARD.cpio.FORMAT.
	OutDir string
	// Formats to write; default XZ only.
	Formats []initramfs.Format
	// BuildTime is the clock floor linked into the binary; zero means now.
	BuildTime time.Time
	// SourceDir is the module root to build in (default: found above the
	// working directory).
	SourceDir string
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

// RescueImage is one built image.
type RescueImage struct {
	Path   string
	Format initramfs.Format
	Result initramfs.Result
}

// BuildRescue builds the rescue image of a board in each format asked for:
// cmd/lifeboat as /init (so PID 1 runs the install flow), the board
// profile, its kernel modules and the trust store.
func BuildRescue(ctx context.Context, o RescueOptions) ([]RescueImage, error) {
	if o.Board == "" {
		o.Board = Board
	}
	if len(o.Formats) == 0 {
		o.Formats = []initramfs.Format{initramfs.XZ}
	}
	if o.OutDir == "" || o.KernelDir == "" || len(o.Keys) == 0 {
		return nil, fmt.Errorf("%w: BuildRescue needs OutDir, KernelDir and Keys", ErrOptions)
	}
	if o.SourceDir == "" {
		dir, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		o.SourceDir = dir
	}
	if o.BuildTime.IsZero() {
		o.BuildTime = time.Now()
	}
	profile, err := boards.Builtin(o.Board)
	if err != nil {
		return nil, err
	}
	profilePath := filepath.Join(o.SourceDir, "boards", o.Board+".json")
	if _, err := os.Stat(profilePath); err != nil {
		return nil, fmt.Errorf("%w: board profile source: %w", ErrOptions, err)
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	var out []RescueImage
	// The clock floor: a board without a real-time clock starts in 1970,
	// before every certificate's validity.
	ldflags := "-X " + BuildTimeVar + "=" + strconv.FormatInt(o.BuildTime.Unix(), 10)
	for _, f := range o.Formats {
		path := filepath.Join(o.OutDir, "rescue-"+o.Board+".cpio."+string(f))
		res, err := initramfs.Build(ctx, initramfs.Options{
			Init:         RescuePkg,
			Dir:          o.SourceDir,
			KernelDir:    o.KernelDir,
			Modules:      profile.Modules,
			BoardProfile: profilePath,
			Keys:         o.Keys,
			Format:       f,
			Output:       path,
			Logf:         o.Logf,
			LDFlags:      ldflags,
			// HTTP/2 is no use for one bundle download, and leaving it
			// out makes the image about 120 KB smaller.
			Tags: []string{"nethttpomithttp2"},
		})
		if err != nil {
			return nil, fmt.Errorf("rescue image %s: %w", f, err)
		}
		out = append(out, RescueImage{Path: path, Format: f, Result: res})
	}
	return out, nil
}

// Key is a signing key pair kept in a folder: release.key (PKCS #8,
// private) and release.pub (the rescue's trust store).
type Key struct {
	Dir  string
	Pub  ed25519.PublicKey
	Priv ed25519.PrivateKey
}

// PubPath is the public key file.
func (k *Key) PubPath() string { return filepath.Join(k.Dir, "release.pub") }

// Signer signs bundles with the key.
func (k *Key) Signer() bundle.Signer { return bundle.Ed25519Signer{Key: k.Priv} }

// LoadOrCreateKey reads the key pair in dir, making one first if there is
// none, so that rescue images and bundles built at different times agree.
func LoadOrCreateKey(dir string) (*Key, error) {
	k := &Key{Dir: dir}
	privPath := filepath.Join(dir, "release.key")
	b, err := os.ReadFile(privPath)
	if errors.Is(err, fs.ErrNotExist) {
		pub, priv, err := bundle.GenerateKey(nil)
		if err != nil {
			return nil, err
		}
		privPEM, err := bundle.MarshalPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		pubPEM, err := bundle.MarshalPublicKey(pub)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(k.PubPath(), pubPEM, 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(privPath, privPEM, 0o600); err != nil {
			return nil, err
		}
		k.Pub, k.Priv = pub, priv
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	if k.Priv, err = bundle.ParsePrivateKey(b); err != nil {
		return nil, fmt.Errorf("%s: %w", privPath, err)
	}
	k.Pub = k.Priv.Public().(ed25519.PublicKey)
	pubPEM, err := bundle.MarshalPublicKey(k.Pub)
	if err != nil {
		return nil, err
	}
	// The public half is rewritten from the private one: they always
	// match.
	if err := os.WriteFile(k.PubPath(), pubPEM, 0o644); err != nil {
		return nil, err
	}
	return k, nil
}
