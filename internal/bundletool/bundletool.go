// Package bundletool is the host tool that makes and checks Lifeboat
// bundles: lifeboat-bundle keygen, create, inspect and verify.
package bundletool

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
)

const usage = `usage: lifeboat-bundle COMMAND [flags]

commands:
  keygen  -o NAME                 write NAME.key (private) and NAME.pub (public)
  create  -spec FILE -key KEY -o OUT.lfb [-chunk-size 1MiB] [-workers N]
  inspect BUNDLE [-json] [-keys DIR|FILE]
  verify  BUNDLE -keys DIR|FILE   check the signature and every chunk

Run "lifeboat-bundle COMMAND -h" for a command's flags; docs/cli.md has more.
`

// Main runs the tool and returns its exit code (docs/cli.md). Every
// failure prints one line "lifeboat-bundle: <reason>" on stderr, with
// whatever it quotes from a bundle or a spec escaped.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdin, stdout)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitcode.OK
	case errors.Is(err, errUsage), errors.As(err, new(*SpecError)):
		// A spec is part of the command line: a mistake in it is a usage
		// error.
		fmt.Fprintf(stderr, "lifeboat-bundle: %s\n", bundle.OneLine(err.Error()))
		return exitcode.Usage
	}
	fmt.Fprintf(stderr, "lifeboat-bundle: %s\n", bundle.OneLine(err.Error()))
	// The device command's exit codes, so scripts learn one table.
	return exitcode.Of(err)
}

// errUsage marks command line mistakes (exit code 2).
var errUsage = errors.New("usage")

// usageError is a command line mistake of cmd; its message points at the
// command's help.
func usageError(cmd, format string, a ...any) error {
	hint := "lifeboat-bundle -h"
	if cmd != "" {
		hint = "lifeboat-bundle " + cmd + " -h"
	}
	return fmt.Errorf("%w: %s (see %s)", errUsage, fmt.Sprintf(format, a...), hint)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("", "no command")
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout)
	case "create":
		return create(ctx, args[1:], stdout)
	case "inspect":
		return inspect(args[1:], stdin, stdout)
	case "verify":
		return verify(args[1:], stdin, stdout)
	case "help", "-h", "-help", "--help":
		if len(args) == 2 && args[0] == "help" {
			// "help COMMAND" is "COMMAND -h".
			return run(ctx, []string{args[1], "-h"}, stdin, stdout)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError("", "unknown command %s", bundle.Printable(args[0]))
}

// newFlags returns the flag set of a command; its usage, for -h, goes to
// stdout.
func newFlags(cmd, synopsis string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lifeboat-bundle "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "usage: lifeboat-bundle %s %s\n\nflags:\n", cmd, synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parse parses flags that may come before or after the positional
// arguments, and returns the positional ones. -h prints the command's
// usage once (the flag package calls Usage) and returns flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	cmd := strings.TrimPrefix(fs.Name(), "lifeboat-bundle ")
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError(cmd, "%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func keygen(args []string, stdout io.Writer) error {
	fs := newFlags("keygen", "-o NAME", stdout)
	out := fs.String("o", "", "output `NAME`: writes NAME.key and NAME.pub")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *out == "" || len(pos) != 0 {
		return usageError("keygen", "keygen needs -o NAME and nothing else")
	}
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		return err
	}
	kb, err := bundle.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	pb, err := bundle.MarshalPublicKey(pub)
	if err != nil {
		return err
	}
	// O_EXCL: never overwrite a signing key by accident.
	f, err := os.OpenFile(*out+".key", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
	if err := os.WriteFile(*out+".pub", pb, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key %s: private %s.key, public %s.pub\n", bundle.KeyID(pub), *out, *out)
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func loadSigners(paths []string) ([]bundle.Signer, error) {
	var ss []bundle.Signer
	for _, p := range paths {
		b, err := bundle.ReadKeyFile(p)
		if err != nil {
			return nil, err
		}
		k, err := bundle.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		ss = append(ss, bundle.Ed25519Signer{Key: k})
	}
	return ss, nil
}

func create(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("create", "-spec FILE -key KEY [-key KEY...] -o OUT.lfb [-chunk-size SIZE] [-workers N] [-q]", stdout)
	specPath := fs.String("spec", "", "bundle spec `FILE` (YAML)")
	out := fs.String("o", "", "output bundle `FILE`")
	var keys multiFlag
	fs.Var(&keys, "key", "private key `FILE` (repeat to sign with several)")
	chunk := fs.String("chunk-size", "", "chunk `SIZE`, e.g. 4MiB (default: the spec's, else 1MiB)")
	workers := fs.Int("workers", runtime.NumCPU(), "compression workers")
	quiet := fs.Bool("q", false, "print nothing on success")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *specPath == "" || *out == "" || len(keys) == 0 || len(pos) != 0 {
		return usageError("create", "create needs -spec, -key and -o")
	}
	if *workers < 1 {
		return usageError("create", "-workers %d: want at least 1", *workers)
	}
	spec, err := LoadSpec(*specPath)
	if err != nil {
		return err
	}
	m, imgs, err := spec.Manifest()
	if err != nil {
		return err
	}
	cs := uint64(spec.ChunkSize)
	if *chunk != "" {
		if cs, err = ParseSize(*chunk); err != nil {
			return usageError("create", "-chunk-size: %v", err)
		}
		if cs < bundle.MinChunkSize || cs > bundle.MaxChunkSize || cs&(cs-1) != 0 {
			return usageError("create", "-chunk-size %s: want a power of two from 64KiB to 64MiB", *chunk)
		}
	}
	if cs == 0 {
		cs = bundle.DefaultChunkSize
	}
	// Everything a device would refuse is refused here, with the spec's
	// line, before an image is read.
	if err := spec.Check(m, imgs, cs); err != nil {
		return err
	}
	signers, err := loadSigners(keys)
	if err != nil {
		return err
	}
	start := time.Now()
	// Write next to the output and rename: a half-written bundle never
	// carries the final name.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".lifeboat-bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	w := bundle.NewWriter(bw, m, bundle.WriterOptions{ChunkSize: uint32(cs), Workers: *workers, TempDir: filepath.Dir(*out), Signers: signers})
	var in uint64
	for _, im := range imgs {
		if err := ctx.Err(); err != nil {
			tmp.Close()
			return err
		}
		f, err := os.Open(im.Path)
		if err != nil {
			tmp.Close()
			return err
		}
		added, err := w.AddImage(im.Name, f)
		f.Close()
		if err != nil {
			tmp.Close()
			return err
		}
		in += added.Size
	}
	if err := w.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	if !*quiet {
		fi, _ := os.Stat(*out)
		var size int64
		if fi != nil {
			size = fi.Size()
		}
		fmt.Fprintf(stdout, "%s: %s %s, %d images, %s of images in %s (%.1f%%), %.1fs\n",
			bundle.Printable(*out), bundle.Printable(m.Product), bundle.Printable(m.Version), len(imgs), mib(in), mib(uint64(size)), pct(uint64(size), in), time.Since(start).Seconds())
	}
	return nil
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func pct(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func openBundle(path string, stdin io.Reader) (io.ReadCloser, int64, error) {
	if path == "-" {
		return io.NopCloser(stdin), -1, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// report is what inspect prints with -json.
type report struct {
	Manifest   *bundle.Manifest        `json:"manifest"`
	Signatures []signatureReport       `json:"signatures"`
	Verified   *bool                   `json:"signature_verified,omitempty"`
	Error      string                  `json:"error,omitempty"`
	Size       uint64                  `json:"size"`
	Chunks     map[string]chunkSummary `json:"chunks,omitempty"`
}

type signatureReport struct {
	KeyID     string `json:"key_id"`
	Algorithm string `json:"algorithm"`
	Trusted   *bool  `json:"trusted,omitempty"`
}

type chunkSummary struct {
	Zero   int    `json:"zero"`
	Raw    int    `json:"raw"`
	LZ4    int    `json:"lz4"`
	Stored uint64 `json:"stored_bytes"`
}

func inspect(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags("inspect", "BUNDLE [-json] [-keys DIR|FILE]", stdout)
	asJSON := fs.Bool("json", false, "print JSON")
	keys := fs.String("keys", "", "trust store `DIR|FILE`: also check the signature and the index")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("inspect", "inspect needs one bundle")
	}
	f, size, err := openBundle(pos[0], stdin)
	if err != nil {
		return err
	}
	defer f.Close()
	u, err := bundle.ReadUnverified(f)
	if err != nil {
		return err
	}
	rep := report{Manifest: u.Manifest, Size: u.Size}
	var trustErr error
	var trusted map[string]bool
	if *keys != "" {
		ts, err := bundle.LoadTrustStore(*keys)
		if err != nil {
			return err
		}
		trusted = map[string]bool{}
		for _, id := range ts.KeyIDs() {
			trusted[id] = true
		}
		ra, ok := f.(io.ReaderAt)
		if !ok {
			return usageError("inspect", "inspect -keys needs a file, not a stream")
		}
		var r *bundle.Reader
		r, trustErr = bundle.NewReaderAt(ra, size, ts)
		verified := trustErr == nil
		rep.Verified = &verified
		if verified {
			rep.Chunks = summarize(r)
		}
	}
	for _, s := range u.Signatures.Signatures {
		sr := signatureReport{KeyID: s.KeyID, Algorithm: s.Algorithm}
		if trusted != nil {
			t := trusted[s.KeyID]
			sr.Trusted = &t
		}
		rep.Signatures = append(rep.Signatures, sr)
	}
	if u.ParseError != nil {
		rep.Error = u.ParseError.Error()
	}
	if trustErr != nil {
		rep.Error = trustErr.Error()
	}
	if *asJSON {
		enc := json.NewEncoder(&jsonEscaper{w: stdout})
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, &rep)
	}
	if trustErr != nil {
		return trustErr
	}
	return u.ParseError
}

// jsonEscaper passes JSON on with every character that is not printable
// written as a \u escape. encoding/json escapes control characters below
// 0x20 but not DEL, the C1 controls or bidi overrides, which a terminal
// acts on; outside strings, JSON holds only printable ASCII and newlines.
type jsonEscaper struct{ w io.Writer }

func (j *jsonEscaper) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, r := range string(p) {
		switch {
		case r == '\n' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	if _, err := io.WriteString(j.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}

func summarize(r *bundle.Reader) map[string]chunkSummary {
	out := map[string]chunkSummary{}
	for _, im := range r.Manifest().Images {
		cs, _ := r.Chunks(im.Name)
		var s chunkSummary
		for _, c := range cs {
			switch c.Encoding {
			case bundle.EncodingZero:
				s.Zero++
			case bundle.EncodingRaw:
				s.Raw++
			case bundle.EncodingLZ4:
				s.LZ4++
			}
			s.Stored += uint64(c.StoredSize)
		}
		out[im.Name] = s
	}
	return out
}

// printReport prints what inspect found for a person. Every string from
// the bundle goes through bundle.Printable: without a trust store, none of
// it is verified, and with one it is still the signer's text, not ours.
func printReport(w io.Writer, rep *report) {
	q := bundle.Printable
	m := rep.Manifest
	if m == nil {
		fmt.Fprintf(w, "manifest: unreadable: %s\n", bundle.OneLine(rep.Error))
		return
	}
	var boards []string
	for _, c := range m.Compatible {
		boards = append(boards, q(c))
	}
	fmt.Fprintf(w, "product:          %s\n", q(m.Product))
	fmt.Fprintf(w, "version:          %s\n", q(m.Version))
	fmt.Fprintf(w, "security version: %d\n", m.SecurityVersion)
	fmt.Fprintf(w, "compatible:       %s\n", strings.Join(boards, ", "))
	if m.Description != "" {
		fmt.Fprintf(w, "description:      %s\n", q(m.Description))
	}
	fmt.Fprintf(w, "created:          %s\n", q(m.Created))
	fmt.Fprintf(w, "size:             %d bytes (payload %d, index %d)\n", rep.Size, m.PayloadSize, m.IndexSize)
	fmt.Fprintf(w, "chunk size:       %d\n", m.ChunkSize)
	switch {
	case rep.Verified == nil:
		fmt.Fprintf(w, "signature:        not checked (give -keys)\n")
	case *rep.Verified:
		fmt.Fprintf(w, "signature:        verified\n")
	default:
		fmt.Fprintf(w, "signature:        FAILED: %s\n", bundle.OneLine(rep.Error))
	}
	for _, s := range rep.Signatures {
		t := ""
		if s.Trusted != nil {
			t = map[bool]string{true: " (trusted)", false: " (unknown key)"}[*s.Trusted]
		}
		fmt.Fprintf(w, "  signed by %s %s%s\n", q(s.Algorithm), q(s.KeyID), t)
	}
	fmt.Fprintf(w, "images:\n")
	for _, im := range m.Images {
		fmt.Fprintf(w, "  %-16s %12d bytes  %6d chunks  sha256 %s\n", q(im.Name), im.Size, im.Chunks, q(im.SHA256))
		if s, ok := rep.Chunks[im.Name]; ok {
			fmt.Fprintf(w, "  %-16s stored %d bytes (%.1f%%): %d lz4, %d raw, %d zero\n", "", s.Stored, pct(s.Stored, im.Size), s.LZ4, s.Raw, s.Zero)
		}
	}
	fmt.Fprintf(w, "steps:\n")
	for i, s := range m.Steps {
		fmt.Fprintf(w, "  %d. %s\n", i+1, describeStep(&s))
	}
}

func describeStep(s *bundle.Step) string {
	q := bundle.Printable
	switch s.Type {
	case bundle.StepImage:
		d := fmt.Sprintf("image %s -> %s", q(s.Image), q(s.Target))
		if s.Offset != 0 {
			d += fmt.Sprintf(" at offset %d", s.Offset)
		}
		if s.Verify {
			d += " (read back)"
		}
		return d
	case bundle.StepPartition:
		if s.Table == nil {
			return fmt.Sprintf("partition %s: no table", q(s.Target))
		}
		var parts []string
		for _, p := range s.Table.Partitions {
			size := "rest"
			if p.Size != 0 {
				size = mib(p.Size)
			}
			parts = append(parts, fmt.Sprintf("%s(%s, %s)", q(p.Name), q(p.Type), size))
		}
		return fmt.Sprintf("partition %s as %s: %s", q(s.Target), q(s.Table.Type), strings.Join(parts, " "))
	case bundle.StepEnv:
		var kv []string
		for k, v := range s.Set {
			kv = append(kv, q(k)+"="+q(v))
		}
		sort.Strings(kv)
		for _, k := range s.Unset {
			kv = append(kv, "-"+q(k))
		}
		return fmt.Sprintf("env %s: %s", q(s.Target), strings.Join(kv, " "))
	case bundle.StepWipe:
		mode := s.Mode
		if mode == "" {
			mode = bundle.WipeQuick
		}
		return fmt.Sprintf("wipe %s (%s)", q(s.Target), q(mode))
	}
	return fmt.Sprintf("%s %s", q(string(s.Type)), q(s.Target))
}

// readImage reads the current image of r to its end: Read checks every
// chunk, and the image's bytes are hashed on another goroutine, alongside,
// for its whole SHA-256. A build pipeline that signed chunk hashes which
// do not add up to the image's is caught here.
func readImage(r *bundle.Reader, im *bundle.Image) (uint64, error) {
	h := sha256.New()
	pr, pw := io.Pipe()
	hashed := make(chan error, 1)
	go func() {
		_, err := io.Copy(h, pr)
		pr.CloseWithError(err)
		hashed <- err
	}()
	n, err := io.Copy(pw, r)
	pw.CloseWithError(err)
	if herr := <-hashed; err == nil {
		err = herr
	}
	if err != nil {
		return 0, fmt.Errorf("image %s: %w", bundle.Printable(im.Name), err)
	}
	if uint64(n) != im.Size {
		return 0, fmt.Errorf("%w: image %s: %d bytes, the manifest says %d", bundle.ErrFormat, bundle.Printable(im.Name), n, im.Size)
	}
	if hex.EncodeToString(h.Sum(nil)) != im.SHA256 {
		return 0, fmt.Errorf("%w: image %s: its chunks verify, but together they do not match the image's SHA-256", bundle.ErrChecksum, bundle.Printable(im.Name))
	}
	return uint64(n), nil
}

func verify(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := newFlags("verify", "BUNDLE -keys DIR|FILE", stdout)
	keys := fs.String("keys", "", "trust store: a public key `FILE` or a `DIR` of *.pub")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keys == "" {
		return usageError("verify", "verify needs a bundle and -keys")
	}
	ts, err := bundle.LoadTrustStore(*keys)
	if err != nil {
		return err
	}
	f, _, err := openBundle(pos[0], stdin)
	if err != nil {
		return err
	}
	defer f.Close()
	// Read as a stream, as a device would from the network.
	r, err := bundle.NewReader(bufio.NewReaderSize(f, 1<<20), ts)
	if err != nil {
		return err
	}
	var total uint64
	for {
		im, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		n, err := readImage(r, im)
		if err != nil {
			return err
		}
		total += n
	}
	m := r.Manifest()
	fmt.Fprintf(stdout, "%s: %s %s signed by %s; %d images, %s verified\n", bundle.Printable(pos[0]),
		bundle.Printable(m.Product), bundle.Printable(m.Version), strings.Join(r.Signers(), ","), len(m.Images), mib(total))
	return nil
}
