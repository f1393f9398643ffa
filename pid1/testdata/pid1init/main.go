// Command pid1init is the PID 1 of package pid1's VM tests: the real
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

	"github.com/lifeboat-updater/lifeboat/pid1"
)

func main() {
	pid1.Run(pid1.Config{Flow: flow})
}

func flow(ctx context.Context, env *pid1.Env) error {
	if want, ok := env.Params["test_wait_block"]; ok {
		waitBlock(env, strings.Split(want, ","))
	}
	if _, ok := env.Params["test_hang"]; ok {
		env.Log.Printf("%s", pid1.ReadyMarker)
		env.Log.Printf("test: the flow hangs now")
		for {
			time.Sleep(time.Hour)
		}
	}
	return pid1.DefaultFlow(ctx, env)
}

func waitBlock(env *pid1.Env, names []string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		var missing []string
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(pid1.SysBlock, n)); err != nil {
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
