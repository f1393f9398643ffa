package bundletool

import "github.com/lifeboat-updater/lifeboat/bundle"

// SpecUnitField declares a per-unit value in a bundle spec (the manifest's
// unit_data; docs/station.md). For example:
//
//	unit_data:
//	  - {name: serial, from: serial, format: serial, pattern: "LB-[0-9]{6}",
//	     to: [{type: env, target: bootenv, variable: "serial#"}]}
//	  - {name: mac0, from: mac, index: 0, format: mac,
//	     to: [{type: env, target: bootenv, variable: ethaddr}]}
type SpecUnitField struct {
	Name    string         `yaml:"name"`
	From    string         `yaml:"from"`
	Index   int            `yaml:"index"`
	Format  string         `yaml:"format"`
	Pattern string         `yaml:"pattern"`
	To      []SpecUnitDest `yaml:"to"`
}

// SpecUnitDest is one place a per-unit value goes.
type SpecUnitDest struct {
	Type     string `yaml:"type"`
	Target   string `yaml:"target"`
	Variable string `yaml:"variable"`
	Path     string `yaml:"path"`
	Offset   Size   `yaml:"offset"`
	Size     Size   `yaml:"size"`
	Encoding string `yaml:"encoding"`
}

// unitData turns the spec's unit_data into the manifest's; the manifest's
// validation (when the bundle is written) checks it.
func (s *Spec) unitData() []bundle.UnitField {
	var out []bundle.UnitField
	for _, f := range s.UnitData {
		uf := bundle.UnitField{Name: f.Name, From: f.From, Index: f.Index, Format: f.Format, Pattern: f.Pattern}
		for _, d := range f.To {
			uf.To = append(uf.To, bundle.UnitDest{
				Type: d.Type, Target: d.Target, Variable: d.Variable, Path: d.Path,
				Offset: uint64(d.Offset), Size: uint64(d.Size), Encoding: d.Encoding,
			})
		}
		out = append(out, uf)
	}
	return out
}
