package bootenv_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lifeboat-updater/lifeboat/bootenv"
)

// Apply sets the variables a U-Boot script reads after a rescue install,
// here on a redundant env held by one file, as fw_env.config describes it.
func Example() {
	dir, _ := os.MkdirTemp("", "bootenv")
	defer os.RemoveAll(dir)
	env := filepath.Join(dir, "env.bin")
	os.WriteFile(env, make([]byte, 0x8000), 0o644)
	config := filepath.Join(dir, "fw_env.config")
	os.WriteFile(config, []byte(env+" 0x0 0x4000\n"+env+" 0x4000 0x4000\n"), 0o644)

	s, err := bootenv.Open(bootenv.Config{Type: bootenv.UBoot, FWEnvConfig: config})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Blank storage has no valid copy: Load refuses it rather than
	// inventing defaults, and provisioning writes a new env explicitly.
	if _, err := s.Load(); err != nil {
		fmt.Println(err)
		blank := s.New()
		blank.Set("bootlimit", "3")
		s.Save(blank)
	}

	err = s.Apply(map[string]string{"bootcount": "0", "upgrade_available": "0"}, []string{"rescue_reason"})
	fmt.Println(err)
	loaded, _ := s.Load()
	fmt.Println(loaded.Vars())
	// Output:
	// bootenv: no copy with a valid CRC
	// <nil>
	// map[bootcount:0 bootlimit:3 upgrade_available:0]
}

func ExampleDecodeGRUB() {
	e := bootenv.NewGRUBEnv()
	e.Set("saved_entry", "rescue")
	e.Set("note", "two\nlines")
	block, _ := e.Encode()
	fmt.Println(len(block))
	fmt.Printf("%q\n", block[94:130])

	back, _ := bootenv.DecodeGRUB(block)
	note, _ := back.Get("note")
	fmt.Printf("%q\n", note)
	// Output:
	// 1024
	// "saved_entry=rescue\nnote=two\\\nlines\n#"
	// "two\nlines"
}
