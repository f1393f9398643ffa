package bundletool

import (
	"fmt"
	"os"
	"path/filepath"
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
	SecurityVersion uint64            `yaml:"security_version"`
	Compatible      []string          `yaml:"compatible"`
	Description     string            `yaml:"description"`
	ChunkSize       Size              `yaml:"chunk_size"`
	Images          map[string]string `yaml:"images"` // name -> file, relative to the spec
	Steps           []SpecStep        `yaml:"steps"`
	// UnitData declares per-unit values (unitspec.go).
	UnitData []SpecUnitField `yaml:"unit_data"`

	dir string
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

	Set   map[string]string `yaml:"set"`
	Unset []string          `yaml:"unset"`

	Mode string `yaml:"mode"`
}

// SpecPartition is one partition of a partition step.
type SpecPartition struct {
	Name       string `yaml:"name"`
	Type       string `yaml:"type"`
	GUID       string `yaml:"guid"`
	Start      Size   `yaml:"start"`
	Size       Size   `yaml:"size"`
	Attributes uint64 `yaml:"attributes"`
	Bootable   bool   `yaml:"bootable"`
}

// Size is a byte count written as a number or with a binary unit:
// 4096, 64KiB, 1MiB, 2G (K, M, G, T are powers of 1024).
type Size uint64

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = Size(v)
	return nil
}

// ParseSize parses a byte count such as "512", "64KiB", "1M" or "2GiB".
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := uint64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K', 'k':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseUint(strings.TrimSpace(t), 0, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if v > (1<<64-1)/mult {
		return 0, fmt.Errorf("size %q overflows", s)
	}
	return v * mult, nil
}

// LoadSpec reads a spec file. Relative file names in it are taken from the
// spec's own folder.
func LoadSpec(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.dir = filepath.Dir(path)
	return &s, nil
}

// SpecImage is an image file to add, in payload order.
type SpecImage struct {
	Name string
	Path string
}

// Manifest turns the spec into a manifest template (without images and
// sizes, which the bundle Writer fills in) and the image files to add, in
// the order the steps use them, so that a stream install reads the payload
// front to back.
func (s *Spec) Manifest() (bundle.Manifest, []SpecImage, error) {
	m := bundle.Manifest{
		Product:         s.Product,
		Version:         s.Version,
		SecurityVersion: s.SecurityVersion,
		Compatible:      s.Compatible,
		Description:     s.Description,
		UnitData:        s.unitData(),
	}
	var imgs []SpecImage
	used := map[string]bool{}
	for i, st := range s.Steps {
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
				return m, nil, fmt.Errorf("step %d: image %q has no file (give file: or list it under images:)", i+1, name)
			}
			if used[name] {
				return m, nil, fmt.Errorf("step %d: image %q is written by two steps; give each its own name", i+1, name)
			}
			used[name] = true
			if !filepath.IsAbs(file) {
				file = filepath.Join(s.dir, file)
			}
			imgs = append(imgs, SpecImage{Name: name, Path: file})
			step.Image, step.Offset, step.Verify = name, uint64(st.Offset), st.Verify
		case bundle.StepPartition:
			t := &bundle.Table{Type: st.Table, GUID: st.GUID}
			if t.Type == "" {
				t.Type = "gpt"
			}
			for _, p := range st.Partitions {
				t.Partitions = append(t.Partitions, bundle.Partition{
					Name: p.Name, Type: p.Type, GUID: p.GUID, Start: uint64(p.Start), Size: uint64(p.Size),
					Attributes: p.Attributes, Bootable: p.Bootable,
				})
			}
			step.Table = t
		case bundle.StepEnv:
			step.Set, step.Unset = st.Set, st.Unset
		case bundle.StepWipe:
			step.Mode = st.Mode
		default:
			return m, nil, fmt.Errorf("step %d: unknown type %q (want image, partition, env or wipe)", i+1, st.Type)
		}
		m.Steps = append(m.Steps, step)
	}
	for name := range s.Images {
		if !used[name] {
			return m, nil, fmt.Errorf("image %q is listed but no step writes it", name)
		}
	}
	return m, imgs, nil
}
