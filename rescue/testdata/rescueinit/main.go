// Command rescueinit is the PID 1 of the rescue package's VM tests: the real
// rescue platform and DefaultFlow, plus what a test asks for on the kernel
// command line:
//
//	lifeboat.test_hang          the flow prints the ready marker, then hangs
//	                            without showing life: the watchdog must reset
//	lifeboat.test_wait_block=a,b  wait until these block devices exist
package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/rescue"
)

func main() {
	rescue.Run(rescue.Config{Flow: flow})
}

func flow(ctx context.Context, env *rescue.Env) error {
	if want, ok := env.Params["test_wait_block"]; ok {
		waitBlock(env, strings.Split(want, ","))
	}
	if _, ok := env.Params["test_hang"]; ok {
		env.Log.Printf("%s", rescue.ReadyMarker)
		env.Log.Printf("test: the flow hangs now")
		for {
			time.Sleep(time.Hour)
		}
	}
	return rescue.DefaultFlow(ctx, env)
}

func waitBlock(env *rescue.Env, names []string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var missing []string
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(rescue.SysBlock, n)); err != nil {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			env.Log.Printf("test: block devices present: %s", strings.Join(names, " "))
			return
		}
		if time.Now().After(deadline) {
			env.Log.Printf("test: block devices missing: %s", strings.Join(missing, " "))
			return
		}
		env.Alive()
		time.Sleep(100 * time.Millisecond)
	}
}
