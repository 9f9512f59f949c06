package e2e_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/internal/testenv"
)

// A quickstart step is a fenced shell block of README.md preceded by a
// marker comment, which renders as nothing:
//
//	<!-- quickstart: run -->                  run it; it must exit 0
//	<!-- quickstart: run until "REGEXP" -->   run it again until it exits 0
//	                                          and its output matches REGEXP
//	<!-- quickstart: background -->           start it and keep it running
//	                                          (a server in its own terminal)
//
// Blocks run with bash -euo pipefail in one directory; variables a block
// exports are seen by the blocks after it, as in a terminal.
type quickstartStep struct {
	line       int // of the marker in README.md
	background bool
	until      *regexp.Regexp
	script     string
}

var markerRE = regexp.MustCompile(`^<!-- quickstart: (run|background)(?: until "(.*)")? -->$`)

// parseQuickstart returns the marked blocks of a README in order. A marker
// not followed by a fenced block, or a bad regexp, is an error: the README
// and the test must not drift apart silently.
func parseQuickstart(readme string) ([]quickstartStep, error) {
	var steps []quickstartStep
	lines := strings.Split(readme, "\n")
	for i := 0; i < len(lines); i++ {
		m := markerRE.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.Contains(lines[i], "quickstart:") && strings.HasPrefix(lines[i], "<!--") {
				return nil, fmt.Errorf("README.md:%d: malformed quickstart marker %q", i+1, lines[i])
			}
			continue
		}
		st := quickstartStep{line: i + 1, background: m[1] == "background"}
		if m[2] != "" {
			re, err := regexp.Compile(m[2])
			if err != nil {
				return nil, fmt.Errorf("README.md:%d: %v", i+1, err)
			}
			st.until = re
		}
		j := i + 1
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j >= len(lines) || (lines[j] != "```sh" && lines[j] != "```bash") {
			return nil, fmt.Errorf("README.md:%d: quickstart marker not followed by a ```sh block", i+1)
		}
		var body []string
		for j++; j < len(lines) && lines[j] != "```"; j++ {
			body = append(body, lines[j])
		}
		if j >= len(lines) {
			return nil, fmt.Errorf("README.md:%d: unterminated block", i+1)
		}
		st.script = strings.Join(body, "\n")
		steps = append(steps, st)
		i = j
	}
	return steps, nil
}

// TestQuickstart follows the README's quickstart exactly as written, as a
// newcomer would, in a copy of the repository: it builds the binaries with
// the README's command, starts the real server and the real supervisor
// running the real syslog-ng (Debian's syslog-ng-core), pushes the example
// config (APPLIED, syslog-ng writes what it receives), then the broken one
// (FAILED with syslog-ng's own error, the good config back and running).
// The expectations are the README's own "until" patterns.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary and runs the whole quickstart")
	}
	if _, err := os.Stat("/usr/sbin/syslog-ng"); err != nil {
		testenv.Missing(t, "/usr/sbin/syslog-ng is missing: apt-get install syslog-ng-core (.ci/run installs it)")
	}
	for _, port := range []string{"tcp 127.0.0.1:4320", "tcp 127.0.0.1:8080", "udp 127.0.0.1:5514"} {
		network, addr, _ := strings.Cut(port, " ")
		if err := portFree(network, addr); err != nil {
			testenv.Missing(t, fmt.Sprintf("the quickstart uses %s %s, which is busy: %v", network, addr, err))
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := parseQuickstart(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if n := countSteps(steps); n.run < 6 || n.background != 2 || n.until < 4 {
		t.Fatalf("README quickstart has %d run steps (%d with expectations) and %d background ones; its markers were lost?", n.run, n.until, n.background)
	}

	// A copy without bin/ and .data/: the newcomer's fresh clone, and the
	// developer's own state left alone.
	dir := filepath.Join(t.TempDir(), "steward")
	if err := copyTree(root, dir); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "exported")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv()
	// Runs last: after the background steps were stopped, no process they
	// started (syslog-ng included) may be left in the quickstart directory.
	t.Cleanup(func() {
		if pids := processesIn(dir); len(pids) > 0 {
			t.Errorf("processes left running in %s after Ctrl-C: %v", dir, pids)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	start := time.Now()
	for _, st := range steps {
		if st.background {
			startBackground(t, dir, env, envFile, st)
			continue
		}
		runStep(t, dir, env, envFile, st)
	}
	t.Logf("quickstart followed in %v", time.Since(start).Round(time.Second))
}

type stepCounts struct{ run, until, background int }

func countSteps(steps []quickstartStep) stepCounts {
	var n stepCounts
	for _, s := range steps {
		switch {
		case s.background:
			n.background++
		case s.until != nil:
			n.run++
			n.until++
		default:
			n.run++
		}
	}
	return n
}

// cleanEnv is this process's environment without Steward's own variables,
// which a newcomer's shell does not have.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEWARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// script wraps a block: variables exported by earlier blocks are read first
// and the block's exports are saved after it (only when it succeeds).
func script(envFile, block string) string {
	return fmt.Sprintf("source %q\n%s\nexport -p > %q\n", envFile, block, envFile)
}

func runStep(t *testing.T, dir string, env []string, envFile string, st quickstartStep) {
	t.Helper()
	// Bounded, with room for a loaded machine: building every binary from
	// a new directory (the build cache keys on it) takes minutes there.
	limit := 2 * time.Minute
	if strings.Contains(st.script, "go build") {
		limit = 6 * time.Minute
	}
	deadline := time.Now().Add(limit)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script(envFile, st.script))
		cmd.Dir, cmd.Env = dir, env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		out, err := cmd.CombinedOutput()
		cancel()
		ok := err == nil && (st.until == nil || st.until.Match(out))
		if ok {
			t.Logf("README.md:%d (attempt %d):\n$ %s\n%s", st.line, attempt, strings.ReplaceAll(st.script, "\n", "\n$ "), out)
			return
		}
		if st.until == nil || time.Now().After(deadline) {
			want := ""
			if st.until != nil {
				want = fmt.Sprintf(", want output matching %q", st.until)
			}
			t.Fatalf("README.md:%d: %s\nexit: %v%s\noutput:\n%s", st.line, st.script, err, want, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// startBackground starts a long-running block (the server, the
// supervisor) in its own process group, and stops it at the end of the
// test as Ctrl-C would (SIGINT to its process group).
func startBackground(t *testing.T, dir string, env []string, envFile string, st quickstartStep) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "background.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", fmt.Sprintf("source %q\n%s", envFile, st.script))
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Logf("README.md:%d: started in the background (pid %d): %s", st.line, pgid, st.script)
	t.Cleanup(func() {
		defer logFile.Close()
		_ = syscall.Kill(-pgid, syscall.SIGINT) // Ctrl-C in its terminal
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			t.Errorf("README.md:%d: still running 30s after Ctrl-C; killed", st.line)
		}
		if t.Failed() {
			t.Logf("README.md:%d output:\n%s", st.line, tailOf(logPath, 60))
		}
	})
	// Fail early, with its output, if it exits while the steps run.
	select {
	case err := <-done:
		done <- err
		t.Fatalf("README.md:%d exited at once (%v):\n%s", st.line, err, tailOf(logPath, 60))
	case <-time.After(500 * time.Millisecond):
	}
}

// processesIn returns the pids of processes whose working directory is dir.
func processesIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil && cwd == dir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func tailOf(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

func portFree(network, addr string) error {
	if network == "udp" {
		c, err := net.ListenPacket(network, addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// copyTree copies the repository at src to dst, leaving out .git and what
// builds and runs make (bin/, .data/).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		switch rel {
		case ".git", "bin", ".data": // .git is a file in a worktree
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case info.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case !info.Mode().IsRegular():
			return nil
		}
		return copyFile(path, target, info.Mode().Perm())
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestParseQuickstart(t *testing.T) {
	readme := "# x\n<!-- quickstart: run -->\n```sh\necho a\necho b\n```\ntext\n<!-- quickstart: background -->\n\n```sh\nsleep 1\n```\n" +
		"<!-- quickstart: run until \"(?s)a.*b\" -->\n```sh\necho a; echo b\n```\n"
	steps, err := parseQuickstart(readme)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 || steps[0].script != "echo a\necho b" || steps[0].line != 2 || !steps[1].background || steps[1].script != "sleep 1" ||
		steps[2].until == nil || !steps[2].until.MatchString("a\nb") || steps[2].until.MatchString("b a") {
		t.Fatalf("%+v", steps)
	}
	for _, bad := range []string{
		"<!-- quickstart: run -->\ntext\n```sh\necho\n```\n",
		"<!-- quickstart: run -->\n```sh\necho\n",
		"<!-- quickstart: rnu -->\n```sh\necho\n```\n",
		"<!-- quickstart: run until \"(\" -->\n```sh\necho\n```\n",
	} {
		if _, err := parseQuickstart(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if n := countSteps(steps); n != (stepCounts{run: 2, until: 1, background: 1}) {
		t.Errorf("counts %+v", n)
	}
}

// The collector config in examples/ is valid for the collector that
// scripts/build-otelcol.sh builds.
func TestCollectorExamples(t *testing.T) {
	bin := testenv.Getenv(t, "STEWARD_OTELCOL_BIN", "export STEWARD_OTELCOL_BIN=$(scripts/build-otelcol.sh | tail -n1)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "validate", "--config", "../examples/collector.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("otelcol validate: %v\n%s", err, out)
	}
	// The check can fail: a broken config is refused.
	out, err = exec.CommandContext(ctx, bin, "validate", "--config", "../examples/syslog-ng.conf").CombinedOutput()
	if err == nil {
		t.Fatalf("otelcol validate accepted a syslog-ng file:\n%s", out)
	}
}
