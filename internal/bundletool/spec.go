package bundletool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// Spec is the declarative description `lifeboat-bundle create` reads: what
// the bundle is for, which files it carries and the steps of its install.
// See docs/bundle-spec.md.
type Spec struct {
	Product         string            `yaml:"product"`
	Version         string            `yaml:"version"`
	SecurityVersion Decimal           `yaml:"security_version"`
	Compatible      []string          `yaml:"compatible"`
	Description     string            `yaml:"description"`
	ChunkSize       Size              `yaml:"chunk_size"`
	Images          map[string]string `yaml:"images"` // name -> file, relative to the spec
	Steps           []SpecStep        `yaml:"steps"`

	path  string
	dir   string
	lines specLines
}

// SpecStep is one step. For an image step, File names the image file
// directly (the image is then named after Image, or the target).
type SpecStep struct {
	Type   string `yaml:"type"`
	Target string `yaml:"target"`

	Image  string `yaml:"image"`
	File   string `yaml:"file"`
	Offset Size   `yaml:"offset"`
	Verify bool   `yaml:"verify"`

	Table      string          `yaml:"table"` // gpt or mbr
	GUID       string          `yaml:"guid"`
	Partitions []SpecPartition `yaml:"partitions"`

	Set    EnvSet   `yaml:"set"`
	Unset  []string `yaml:"unset"`
	Create bool     `yaml:"create"` // env: make the environment on blank storage

	Mode string `yaml:"mode"`
}

// SpecPartition is one partition of a partition step.
type SpecPartition struct {
	Name       string     `yaml:"name"`
	Type       string     `yaml:"type"`
	GUID       string     `yaml:"guid"`
	Start      Size       `yaml:"start"`
	Size       Size       `yaml:"size"`
	Attributes Attributes `yaml:"attributes"`
	Bootable   bool       `yaml:"bootable"`
}

// SpecError is a mistake in a spec file, at a line of it.
type SpecError struct {
	Path string
	Line int // 0 when the mistake is the whole file's
	Err  error
}

func (e *SpecError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *SpecError) Unwrap() error { return e.Err }

// maxSpecSize bounds a spec file: a spec is a few KiB, and what it becomes
// must fit in a manifest.
const maxSpecSize = bundle.MaxManifestSize

// Size is a byte count: a decimal number, optionally followed by one of
// the units in sizeUnits (K, M, G, T and their KiB... forms are powers of
// 1024). Nothing else is a size: not "010" (which YAML reads as octal), not
// "0x10", "1e6", "1_000", "-1", "1KB" or "1iB".
type Size uint64

// sizeUnits are the units a Size may carry.
var sizeUnits = map[string]uint64{
	"": 1, "B": 1,
	"K": 1 << 10, "KiB": 1 << 10,
	"M": 1 << 20, "MiB": 1 << 20,
	"G": 1 << 30, "GiB": 1 << 30,
	"T": 1 << 40, "TiB": 1 << 40,
}

const sizeHelp = "want a decimal number of bytes, optionally followed by B, K, KiB, M, MiB, G, GiB, T or TiB (powers of 1024)"

var sizeRE = regexp.MustCompile(`^([0-9]+)([A-Za-z]*)$`)

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n)
	if err == nil {
		var u uint64
		u, err = ParseSize(v)
		*s = Size(u)
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// ParseSize parses a byte count such as "512", "64KiB", "1M" or "2GiB".
func ParseSize(s string) (uint64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("size %q: %s", s, sizeHelp)
	}
	mult, ok := sizeUnits[m[2]]
	if !ok {
		return 0, fmt.Errorf("size %q: unit %q: %s", s, m[2], sizeHelp)
	}
	v, err := parseDecimal(m[1])
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if v > (1<<64-1)/mult {
		return 0, fmt.Errorf("size %q overflows 64 bits", s)
	}
	return v * mult, nil
}

// parseDecimal parses digits as a decimal number. A leading zero is
// refused: YAML and C read 010 as eight, and a spec must not mean
// different things to its author and to this tool.
func parseDecimal(d string) (uint64, error) {
	if len(d) > 1 && d[0] == '0' {
		return 0, errors.New("a leading zero (numbers are decimal)")
	}
	v, err := strconv.ParseUint(d, 10, 64)
	if err != nil {
		return 0, errors.New("out of range")
	}
	return v, nil
}

// Decimal is an unsigned decimal number, such as the security version:
// digits only, no sign, no leading zero, no 0x, no exponent.
type Decimal uint64

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Decimal) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n)
	if err == nil {
		if strings.Trim(v, "0123456789") != "" || v == "" {
			err = fmt.Errorf("%q: want a decimal number", v)
		} else {
			var u uint64
			u, err = parseDecimal(v)
			*d = Decimal(u)
		}
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// Attributes are GPT partition attribute bits: a decimal number or 0x and
// hex digits.
type Attributes uint64

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *Attributes) UnmarshalYAML(n *yaml.Node) error {
	v, err := scalar(n)
	if err == nil {
		var u uint64
		if h, ok := strings.CutPrefix(v, "0x"); ok && h != "" && strings.Trim(strings.ToLower(h), "0123456789abcdef") == "" {
			u, err = strconv.ParseUint(h, 16, 64)
		} else if v != "" && strings.Trim(v, "0123456789") == "" {
			u, err = parseDecimal(v)
		} else {
			err = fmt.Errorf("attributes %q: want a decimal number or 0x and hex digits", v)
		}
		*a = Attributes(u)
	}
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

// EnvSet is the variables an env step sets: a mapping of names to values.
// A value left empty in YAML (null) is an error, not an empty value: write
// "" for that.
type EnvSet map[string]string

// UnmarshalYAML implements yaml.Unmarshaler.
func (e *EnvSet) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: set: want a mapping of names to values", n.Line)
	}
	m := EnvSet{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, err := scalar(k)
		if err != nil {
			return fmt.Errorf("line %d: variable name: %w", k.Line, err)
		}
		if _, dup := m[name]; dup {
			return fmt.Errorf("line %d: variable %s set twice", k.Line, bundle.Printable(name))
		}
		val, err := scalar(v)
		if err != nil {
			return fmt.Errorf("line %d: variable %s: %w", v.Line, bundle.Printable(name), err)
		}
		m[name] = val
	}
	*e = m
	return nil
}

// scalar returns the text of a scalar node that is not null.
func scalar(n *yaml.Node) (string, error) {
	switch {
	case n.Kind == yaml.AliasNode:
		return scalar(n.Alias)
	case n.Kind != yaml.ScalarNode:
		return "", errors.New("want a single value")
	case n.ShortTag() == "!!null":
		return "", errors.New(`no value (write "" for an empty one)`)
	}
	return n.Value, nil
}

// LoadSpec reads a spec file. Relative file names in it are taken from the
// spec's own folder. Errors are a *SpecError naming the file and line.
func LoadSpec(path string) (*Spec, error) {
	// Stat before opening: opening a FIFO would wait for a writer.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &SpecError{Path: path, Err: errors.New("not a regular file")}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSpecSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSpecSize {
		return nil, &SpecError{Path: path, Err: fmt.Errorf("larger than %d bytes", maxSpecSize)}
	}
	s := &Spec{path: path, dir: filepath.Dir(path)}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		if err == io.EOF {
			return nil, &SpecError{Path: path, Err: errors.New("empty spec")}
		}
		return nil, yamlError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, &SpecError{Path: path, Line: extra.Line, Err: errors.New("a second YAML document; a spec is one")}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, yamlError(path, err)
	}
	if n, key := findNull(&root, ""); n != nil {
		// YAML leaves a field given no value at its zero value: a
		// partition's size: left empty would take the rest of the disk.
		return nil, &SpecError{Path: path, Line: n.Line, Err: fmt.Errorf(`%s: no value (write "" for an empty string, or leave the key out)`, key)}
	}
	s.lines = findLines(&root)
	return s, nil
}

// findNull returns the first null value of the document, and its key.
func findNull(n *yaml.Node, key string) (*yaml.Node, string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return n, key
		}
	case yaml.MappingNode:
		for k, v := range pairs(n) {
			if found, fk := findNull(v, k.Value); found != nil {
				return found, fk
			}
		}
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			if found, fk := findNull(c, key); found != nil {
				return found, fk
			}
		}
	}
	return nil, ""
}

var (
	yamlLineRE    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknownRE = regexp.MustCompile(`field (\S+) not found in type \S+`)
)

// yamlError turns the YAML package's errors, which can span several
// lines, into one *SpecError at the line of the first mistake.
func yamlError(path string, err error) error {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs = te.Errors
	}
	e := &SpecError{Path: path}
	msg := strings.TrimSpace(msgs[0])
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	msg = yamlUnknownRE.ReplaceAllString(msg, `unknown field "$1"`)
	if len(msgs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(msgs)-1)
	}
	e.Err = errors.New(msg)
	return e
}

// specLines are the lines of a spec's parts, for errors.
type specLines struct {
	keys   map[string]int // top-level keys
	images map[string]int // entries of images:
	steps  []stepLines
}

type stepLines struct {
	line       int
	keys       map[string]int
	partitions []int
	vars       map[string]int // names under set: and unset:
}

// findLines walks the document for the lines of its parts.
func findLines(root *yaml.Node) specLines {
	l := specLines{keys: map[string]int{}, images: map[string]int{}}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return l
	}
	top := root.Content[0]
	for k, v := range pairs(top) {
		l.keys[k.Value] = k.Line
		switch k.Value {
		case "images":
			for ik := range pairs(v) {
				l.images[ik.Value] = ik.Line
			}
		case "steps":
			for _, st := range v.Content {
				sl := stepLines{line: st.Line, keys: map[string]int{}, vars: map[string]int{}}
				for sk, sv := range pairs(st) {
					sl.keys[sk.Value] = sk.Line
					switch sk.Value {
					case "partitions":
						for _, p := range sv.Content {
							sl.partitions = append(sl.partitions, p.Line)
						}
					case "set":
						for vk := range pairs(sv) {
							sl.vars[vk.Value] = vk.Line
						}
					case "unset":
						for _, u := range sv.Content {
							sl.vars[u.Value] = u.Line
						}
					}
				}
				l.steps = append(l.steps, sl)
			}
		}
	}
	return l
}

// pairs yields the keys and values of a mapping node.
func pairs(n *yaml.Node) func(func(k, v *yaml.Node) bool) {
	return func(yield func(k, v *yaml.Node) bool) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

// errAt returns err at a line of the spec.
func (s *Spec) errAt(line int, err error) error {
	return &SpecError{Path: s.path, Line: line, Err: err}
}

// keyLine is the line of a top-level key, or 0.
func (s *Spec) keyLine(key string) int { return s.lines.keys[key] }

// stepLine is the line of step i (0-based), or 0.
func (s *Spec) stepLine(i int) int {
	if i < 0 || i >= len(s.lines.steps) {
		return 0
	}
	return s.lines.steps[i].line
}

// stepKeys are the keys each step type takes.
var stepKeys = map[bundle.StepType][]string{
	bundle.StepImage:     {"type", "target", "image", "file", "offset", "verify"},
	bundle.StepPartition: {"type", "target", "table", "guid", "partitions"},
	bundle.StepEnv:       {"type", "target", "set", "unset"},
	bundle.StepWipe:      {"type", "target", "mode"},
}

// SpecImage is an image file to add, in payload order.
type SpecImage struct {
	Name string
	Path string
	Step int // 0-based step that writes it
}

// Manifest turns the spec into a manifest template (without images and
// sizes, which the bundle Writer fills in) and the image files to add, in
// the order the steps use them, so that a stream install reads the payload
// front to back. Errors are a *SpecError naming the line.
func (s *Spec) Manifest() (bundle.Manifest, []SpecImage, error) {
	m := bundle.Manifest{
		Product:         s.Product,
		Version:         s.Version,
		SecurityVersion: uint64(s.SecurityVersion),
		Compatible:      s.Compatible,
		Description:     s.Description,
	}
	var imgs []SpecImage
	used := map[string]int{}
	for i, st := range s.Steps {
		line := s.stepLine(i)
		step := bundle.Step{Type: bundle.StepType(st.Type), Target: st.Target}
		switch step.Type {
		case bundle.StepImage:
			name, file := st.Image, st.File
			if name == "" {
				name = st.Target
			}
			if file == "" {
				file = s.Images[name]
			}
			if file == "" {
				return m, nil, s.errAt(line, fmt.Errorf("step %d: image %s has no file (give file: or list it under images:)", i+1, bundle.Printable(name)))
			}
			if j, ok := used[name]; ok {
				return m, nil, s.errAt(line, fmt.Errorf("step %d: image %s is written by step %d too; give each its own name", i+1, bundle.Printable(name), j+1))
			}
			used[name] = i
			if !filepath.IsAbs(file) {
				file = filepath.Join(s.dir, file)
			}
			imgs = append(imgs, SpecImage{Name: name, Path: file, Step: i})
			step.Image, step.Offset, step.Verify = name, uint64(st.Offset), st.Verify
		case bundle.StepPartition:
			t := &bundle.Table{Type: st.Table, GUID: st.GUID}
			if t.Type == "" {
				t.Type = "gpt"
			}
			for _, p := range st.Partitions {
				t.Partitions = append(t.Partitions, bundle.Partition{
					Name: p.Name, Type: p.Type, GUID: p.GUID, Start: uint64(p.Start), Size: uint64(p.Size),
					Attributes: uint64(p.Attributes), Bootable: p.Bootable,
				})
			}
			step.Table = t
		case bundle.StepEnv:
			step.Set, step.Unset, step.Create = st.Set, st.Unset, st.Create
		case bundle.StepWipe:
			step.Mode = st.Mode
		default:
			return m, nil, s.errAt(line, fmt.Errorf("step %d: unknown type %s (want image, partition, env or wipe)", i+1, bundle.Printable(st.Type)))
		}
		// A field of another step type means the step is not what its
		// author thinks it is.
		if i < len(s.lines.steps) {
			for key, kl := range s.lines.steps[i].keys {
				if !slices.Contains(stepKeys[step.Type], key) {
					return m, nil, s.errAt(kl, fmt.Errorf("step %d: %s does not apply to a %s step (it takes %s)", i+1, key, st.Type, strings.Join(stepKeys[step.Type], ", ")))
				}
			}
		}
		m.Steps = append(m.Steps, step)
	}
	for name := range s.Images {
		if _, ok := used[name]; !ok {
			return m, nil, s.errAt(s.lines.images[name], fmt.Errorf("image %s is listed but no step writes it", bundle.Printable(name)))
		}
	}
	return m, imgs, nil
}

// Check holds the manifest a spec makes to the rules a device holds a
// bundle to (bundle.Manifest.Validate), before any image is read: the
// image files must exist and be files, and their sizes stand for the
// images'. chunkSize is the bundle's. Errors are a *SpecError naming the
// line of the step, partition or variable at fault.
func (s *Spec) Check(m bundle.Manifest, imgs []SpecImage, chunkSize uint64) error {
	if chunkSize < bundle.MinChunkSize || chunkSize > bundle.MaxChunkSize || chunkSize&(chunkSize-1) != 0 {
		return s.errAt(s.keyLine("chunk_size"), fmt.Errorf("chunk size %d: want a power of two from %d (64KiB) to %d (64MiB)", chunkSize, bundle.MinChunkSize, bundle.MaxChunkSize))
	}
	cs := chunkSize
	m.Format, m.ChunkSize = bundle.FormatVersion, uint32(chunkSize)
	m.IndexSHA256 = strings.Repeat("0", 64)
	m.Created = "2000-01-01T00:00:00Z"
	var chunks uint64
	for _, im := range imgs {
		size, err := imageSize(im.Path)
		if err != nil {
			return s.errAt(s.stepLine(im.Step), fmt.Errorf("step %d: image %s: %w", im.Step+1, bundle.Printable(im.Name), err))
		}
		n := size / cs
		if size%cs != 0 {
			n++
		}
		m.Images = append(m.Images, bundle.Image{Name: im.Name, Size: size, SHA256: m.IndexSHA256, FirstChunk: chunks, Chunks: n})
		chunks += n
		if chunks > bundle.MaxChunks {
			return s.errAt(s.keyLine("chunk_size"), fmt.Errorf("the images need more than %d chunks of %d bytes; use a larger chunk_size", bundle.MaxChunks, chunkSize))
		}
	}
	m.IndexSize = chunks * bundle.IndexEntrySize
	return s.manifestError(m.Validate(), imgs)
}

// manifestError places an error of bundle.Manifest.Validate in the spec.
func (s *Spec) manifestError(err error, imgs []SpecImage) error {
	if err == nil {
		return nil
	}
	// The manifest's own words, without the "malformed bundle" that a
	// reader of a bundle says.
	msg := strings.TrimPrefix(err.Error(), bundle.ErrFormat.Error()+": ")
	var se *bundle.StepError
	if errors.As(err, &se) {
		i := se.Step - 1
		line := s.stepLine(i)
		if i >= 0 && i < len(s.lines.steps) {
			sl := s.lines.steps[i]
			var pe *bundle.PartitionError
			var ve *bundle.EnvVarError
			switch {
			case errors.As(err, &pe) && pe.Partition-1 < len(sl.partitions):
				line = sl.partitions[pe.Partition-1]
			case errors.As(err, &ve) && sl.vars[ve.Name] != 0:
				line = sl.vars[ve.Name]
			}
		}
		return s.errAt(line, errors.New(msg))
	}
	var fe *bundle.FieldError
	if errors.As(err, &fe) {
		line := s.keyLine(fe.Field)
		if fe.Image != "" {
			for _, im := range imgs {
				if im.Name == fe.Image {
					line = s.stepLine(im.Step)
				}
			}
		}
		return s.errAt(line, errors.New(msg))
	}
	return s.errAt(0, errors.New(msg))
}

// imageSize is the size of an image file: a regular file or a block
// device (whose size a stat does not give).
func imageSize(path string) (uint64, error) {
	// Stat before opening: opening a FIFO would wait for a writer, and
	// reading a character device (/dev/zero) would not end.
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	switch {
	case fi.Mode().IsRegular():
		return uint64(fi.Size()), nil
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		n, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return 0, err
		}
		return uint64(n), nil
	}
	return 0, fmt.Errorf("%s is not a regular file or a block device", path)
}
