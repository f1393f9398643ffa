package demo

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/internal/bundletool"
)

// specTmpl is the factory bundle: it partitions a blank disk and writes
// every image. The production system goes first and the bootloader last,
// so a board whose provisioning stops half way does not boot a half-written
// system: it stays blank to the BIOS and network-boots the rescue again.
var specTmpl = template.Must(template.New("bundle.yaml").Funcs(template.FuncMap{
	"mib": func(n uint64) string { return fmt.Sprintf("%dMiB", n/mib) },
}).Parse(`# {{.Product}} {{.Version}} for {{.Board}}: provisions a blank disk.
product: {{.Product}}
version: "{{.Version}}"
security_version: {{.SecurityVersion}}
compatible: [{{.Board}}]
description: Lifeboat demo production system{{if .FailBoot}} (fails its boots on purpose){{end}}
steps:
  - type: partition
    target: disk
    table: gpt
    partitions:
{{- range .Layout}}
      - {name: {{.Name}}, type: {{.Type}}, start: {{mib .Start}}{{if .Size}}, size: {{mib .Size}}{{end}}}
{{- end}}
  - {type: image, target: rootfs, file: {{.Rootfs}}, verify: true}
  - {type: image, target: boot, file: {{.Boot}}, verify: true}
  - {type: image, target: grubenv, file: {{.GRUBEnv}}, verify: true}
  - {type: image, target: rescue, file: {{.Rescue}}, verify: true}
  - {type: image, target: bios-boot, file: {{.Core}}, verify: true}
  # GRUB's boot code: the first 440 bytes of the disk only, so the
  # partition table written above stays as it is.
  - {type: image, image: mbr, target: disk, offset: 0, file: {{.MBR}}, verify: true}
`))

func writeSpec(a *Artifacts) error {
	base := filepath.Base
	d := map[string]any{
		"Product": Product, "Version": a.Version, "SecurityVersion": a.SecurityVersion,
		"Board": Board, "FailBoot": a.FailBoot, "Layout": Layout,
		"Rootfs": base(a.Rootfs), "Boot": base(a.Boot), "GRUBEnv": base(a.GRUBEnv),
		"Rescue": base(a.Rescue), "Core": base(a.Core), "MBR": base(a.MBR),
	}
	var b bytes.Buffer
	if err := specTmpl.Execute(&b, d); err != nil {
		return err
	}
	return os.WriteFile(a.Spec, b.Bytes(), 0o644)
}

// CreateBundle makes the signed bundle that specPath describes (such as
// Artifacts.Spec), as `lifeboat-bundle create` does, and writes it to out.
func CreateBundle(ctx context.Context, specPath, out string, signers ...bundle.Signer) error {
	if len(signers) == 0 {
		return fmt.Errorf("%w: a bundle needs a signer", ErrOptions)
	}
	spec, err := bundletool.LoadSpec(specPath)
	if err != nil {
		return err
	}
	m, imgs, err := spec.Manifest()
	if err != nil {
		return err
	}
	chunkSize := uint64(spec.ChunkSize)
	if chunkSize == 0 {
		chunkSize = bundle.DefaultChunkSize
	}
	// What a device would refuse is refused here, naming the spec's line.
	if err := spec.Check(m, imgs, chunkSize); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".bundle-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	w := bundle.NewWriter(bw, m, bundle.WriterOptions{
		ChunkSize: uint32(chunkSize), TempDir: filepath.Dir(out), Signers: signers,
	})
	for _, im := range imgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := os.Open(im.Path)
		if err != nil {
			return err
		}
		_, err = w.AddImage(im.Name, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}
