// Package bundletool is the host tool that makes and checks Lifeboat
// bundles: lifeboat-bundle keygen, create, inspect and verify.
package bundletool

import (
	"bufio"
	"context"
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

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/exitcode"
)

const usage = `usage: lifeboat-bundle COMMAND [flags]

commands:
  keygen  -o NAME                 write NAME.key (private) and NAME.pub (public)
  create  -spec FILE -key KEY -o OUT.lfb [-chunk-size 1MiB] [-workers N]
  inspect BUNDLE [-json] [-keys DIR|FILE]
  verify  BUNDLE -keys DIR|FILE   check the signature and every chunk
`

// Main runs the tool and returns its exit code (docs/cli.md).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdin, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "lifeboat-bundle: %v\n", err)
		if errors.Is(err, errUsage) {
			fmt.Fprint(stderr, usage)
			return exitcode.Usage
		}
	}
	// The device command's exit codes, so scripts learn one table.
	return exitcode.Of(err)
}

// errUsage marks command line mistakes (exit code 2).
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: no command", errUsage)
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// parse parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
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
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("o", "", "output name: writes NAME.key and NAME.pub")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: keygen needs -o NAME", errUsage)
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
		b, err := os.ReadFile(p)
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
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	specPath := fs.String("spec", "", "bundle spec (YAML)")
	out := fs.String("o", "", "output bundle file")
	var keys multiFlag
	fs.Var(&keys, "key", "private key file (repeat to sign with several)")
	chunk := fs.String("chunk-size", "", "chunk size (default: the spec's, else 1MiB)")
	workers := fs.Int("workers", runtime.NumCPU(), "compression workers")
	quiet := fs.Bool("q", false, "print nothing on success")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *specPath == "" || *out == "" || len(keys) == 0 {
		return fmt.Errorf("%w: create needs -spec, -key and -o", errUsage)
	}
	spec, err := LoadSpec(*specPath)
	if err != nil {
		return err
	}
	m, imgs, err := spec.Manifest()
	if err != nil {
		return fmt.Errorf("%s: %w", *specPath, err)
	}
	cs := uint64(spec.ChunkSize)
	if *chunk != "" {
		if cs, err = ParseSize(*chunk); err != nil {
			return fmt.Errorf("%w: -chunk-size: %v", errUsage, err)
		}
	}
	if cs > bundle.MaxChunkSize {
		return fmt.Errorf("%w: chunk size %d too large", errUsage, cs)
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
			*out, m.Product, m.Version, len(imgs), mib(in), mib(uint64(size)), pct(uint64(size), in), time.Since(start).Seconds())
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
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	keys := fs.String("keys", "", "trust store: also check the signature")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: inspect needs one bundle", errUsage)
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
			return fmt.Errorf("%w: inspect -keys needs a file, not a stream", errUsage)
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
		enc := json.NewEncoder(stdout)
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

func printReport(w io.Writer, rep *report) {
	m := rep.Manifest
	if m == nil {
		fmt.Fprintf(w, "manifest: unreadable: %s\n", rep.Error)
		return
	}
	fmt.Fprintf(w, "product:          %s\n", m.Product)
	fmt.Fprintf(w, "version:          %s\n", m.Version)
	fmt.Fprintf(w, "security version: %d\n", m.SecurityVersion)
	fmt.Fprintf(w, "compatible:       %s\n", strings.Join(m.Compatible, ", "))
	if m.Description != "" {
		fmt.Fprintf(w, "description:      %s\n", m.Description)
	}
	fmt.Fprintf(w, "created:          %s\n", m.Created)
	fmt.Fprintf(w, "size:             %d bytes (payload %d, index %d)\n", rep.Size, m.PayloadSize, m.IndexSize)
	fmt.Fprintf(w, "chunk size:       %d\n", m.ChunkSize)
	switch {
	case rep.Verified == nil:
		fmt.Fprintf(w, "signature:        not checked (give -keys)\n")
	case *rep.Verified:
		fmt.Fprintf(w, "signature:        verified\n")
	default:
		fmt.Fprintf(w, "signature:        FAILED: %s\n", rep.Error)
	}
	for _, s := range rep.Signatures {
		t := ""
		if s.Trusted != nil {
			t = map[bool]string{true: " (trusted)", false: " (unknown key)"}[*s.Trusted]
		}
		fmt.Fprintf(w, "  signed by %s %s%s\n", s.Algorithm, s.KeyID, t)
	}
	fmt.Fprintf(w, "images:\n")
	for _, im := range m.Images {
		fmt.Fprintf(w, "  %-16s %12d bytes  %6d chunks  sha256 %s\n", im.Name, im.Size, im.Chunks, im.SHA256)
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
	switch s.Type {
	case bundle.StepImage:
		d := fmt.Sprintf("image %s -> %s", s.Image, s.Target)
		if s.Offset != 0 {
			d += fmt.Sprintf(" at offset %d", s.Offset)
		}
		if s.Verify {
			d += " (read back)"
		}
		return d
	case bundle.StepPartition:
		var parts []string
		for _, p := range s.Table.Partitions {
			size := "rest"
			if p.Size != 0 {
				size = mib(p.Size)
			}
			parts = append(parts, fmt.Sprintf("%s(%s, %s)", p.Name, p.Type, size))
		}
		return fmt.Sprintf("partition %s as %s: %s", s.Target, s.Table.Type, strings.Join(parts, " "))
	case bundle.StepEnv:
		var kv []string
		for k, v := range s.Set {
			kv = append(kv, k+"="+v)
		}
		sort.Strings(kv)
		for _, k := range s.Unset {
			kv = append(kv, "-"+k)
		}
		return fmt.Sprintf("env %s: %s", s.Target, strings.Join(kv, " "))
	case bundle.StepWipe:
		mode := s.Mode
		if mode == "" {
			mode = bundle.WipeQuick
		}
		return fmt.Sprintf("wipe %s (%s)", s.Target, mode)
	}
	return string(s.Type)
}

func verify(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	keys := fs.String("keys", "", "trust store: a public key file or a folder of *.pub")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *keys == "" {
		return fmt.Errorf("%w: verify needs a bundle and -keys", errUsage)
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
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Name, err)
		}
		total += uint64(n)
	}
	m := r.Manifest()
	fmt.Fprintf(stdout, "%s: %s %s signed by %s; %d images, %s verified\n", pos[0], m.Product, m.Version, strings.Join(r.Signers(), ","), len(m.Images), mib(total))
	return nil
}
