package gcpolicy

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	t.Setenv("GOGC", "")
	if !Apply() {
		t.Fatal("Apply did not set the percentage with GOGC unset")
	}
	if got := debug.SetGCPercent(100); got != Percent {
		t.Errorf("GOGC unset: percentage %d, want %d", got, Percent)
	}

	t.Setenv("GOGC", "200") // the runtime read it at start; here it stands for that
	if Apply() {
		t.Error("Apply overrode GOGC from the environment")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: percentage changed to %d", got)
	}
}
