package http

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

func TestUnifiedDiffExact(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"from empty", "", "x\ny\n", "--- A\n+++ B\n@@ -0,0 +1,2 @@\n+x\n+y\n"},
		{"to empty", "x\n", "", "--- A\n+++ B\n@@ -1 +0,0 @@\n-x\n"},
		{"change middle", "1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n",
			"--- A\n+++ B\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n"},
		{"insert at start", "b\nc\n", "a\nb\nc\n", "--- A\n+++ B\n@@ -1,2 +1,3 @@\n+a\n b\n c\n"},
		{"no newline at end", "a\nb", "a\nb\n",
			"--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"},
		{"two hunks", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "X\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\nY\n",
			"--- A\n+++ B\n@@ -1,4 +1,4 @@\n-1\n+X\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+Y\n"},
		{"merged hunk", "1\n2\n3\n4\n5\n6\n7\n8\n", "X\n2\n3\n4\n5\n6\n7\nY\n",
			"--- A\n+++ B\n@@ -1,8 +1,8 @@\n-1\n+X\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+Y\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UnifiedDiff("A", "B", tc.a, tc.b, 3); got != tc.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// applyUnified applies a unified diff produced by UnifiedDiff to a,
// checking hunk headers and context lines as patch(1) would.
func applyUnified(a, diff string) (string, error) {
	if diff == "" {
		return a, nil
	}
	src := splitLines(a)
	lines := strings.SplitAfter(diff, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") {
		return "", fmt.Errorf("bad header")
	}
	var out []string
	pos := 0 // next source line
	i := 2
	parseRange := func(s string) (start, n int, err error) {
		p, q, ok := strings.Cut(s, ",")
		if start, err = strconv.Atoi(p); err != nil {
			return
		}
		n = 1
		if ok {
			n, err = strconv.Atoi(q)
		}
		return
	}
	for i < len(lines) && lines[i] != "" {
		h := strings.TrimSuffix(lines[i], "\n")
		var ra, rb string
		if _, err := fmt.Sscanf(h, "@@ -%s +%s @@", &ra, &rb); err != nil {
			return "", fmt.Errorf("bad hunk header %q", h)
		}
		as, an, err := parseRange(ra)
		if err != nil {
			return "", err
		}
		bs, bn, err := parseRange(rb)
		if err != nil {
			return "", err
		}
		start := as - 1
		if an == 0 {
			start = as
		}
		if start < pos || start > len(src) {
			return "", fmt.Errorf("hunk %q out of order", h)
		}
		out = append(out, src[pos:start]...)
		if bs-1 != len(out) && !(bn == 0 && bs == len(out)) {
			return "", fmt.Errorf("hunk %q: new start %d, output has %d lines", h, bs, len(out))
		}
		pos = start
		i++
		var seenA, seenB int
		for i < len(lines) && lines[i] != "" && !strings.HasPrefix(lines[i], "@@") {
			l := lines[i]
			i++
			// A line without a newline is followed by the marker.
			if i < len(lines) && lines[i] == "\\ No newline at end of file\n" {
				l = strings.TrimSuffix(l, "\n")
				i++
			}
			kind, text := l[0], l[1:]
			switch kind {
			case ' ', '-':
				if pos >= len(src) || src[pos] != text {
					return "", fmt.Errorf("hunk %q: line %d does not match", h, pos+1)
				}
				pos++
				seenA++
				if kind == ' ' {
					out = append(out, text)
					seenB++
				}
			case '+':
				out = append(out, text)
				seenB++
			default:
				return "", fmt.Errorf("bad line %q", l)
			}
		}
		if seenA != an || seenB != bn {
			return "", fmt.Errorf("hunk %q: counted -%d +%d", h, seenA, seenB)
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, ""), nil
}

func lcsLen(a, b []string) int {
	dp := make([][]int, len(a)+1)
	for i := range dp {
		dp[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				dp[i][j] = dp[i+1][j+1] + 1
			} else {
				dp[i][j] = max(dp[i+1][j], dp[i][j+1])
			}
		}
	}
	return dp[0][0]
}

func randomText(r *rand.Rand, n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.WriteString(string(rune('a' + r.Intn(4))))
		if i < n-1 || r.Intn(4) != 0 {
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

// changedLines counts the removed and added lines of a unified diff.
func changedLines(diff string) int {
	n := 0
	for _, l := range strings.Split(diff, "\n") {
		if (strings.HasPrefix(l, "-") && !strings.HasPrefix(l, "--- ")) || (strings.HasPrefix(l, "+") && !strings.HasPrefix(l, "+++ ")) {
			n++
		}
	}
	return n
}

// TestUnifiedDiffRandom checks on random inputs that the diff applies and
// is minimal (changed lines = n + m - 2·LCS).
func TestUnifiedDiffRandom(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		a, b := randomText(r, r.Intn(20)), randomText(r, r.Intn(20))
		ctx := r.Intn(4)
		d := UnifiedDiff("a", "b", a, b, ctx)
		got, err := applyUnified(a, d)
		if err != nil || got != b {
			t.Fatalf("a=%q b=%q ctx=%d: applying\n%s\ngave %q, %v", a, b, ctx, d, got, err)
		}
		al, bl := splitLines(a), splitLines(b)
		if changed, want := changedLines(d), len(al)+len(bl)-2*lcsLen(al, bl); changed != want {
			t.Fatalf("a=%q b=%q: %d changed lines, minimal is %d", a, b, changed, want)
		}
	}
}

// TestUnifiedDiffCostly checks inputs beyond the exhaustive search (over
// exhaustiveLines, mostly different): still a correct diff.
func TestUnifiedDiffCostly(t *testing.T) {
	var a, b strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&a, "old %d\n", i)
		fmt.Fprintf(&b, "new %d\n", i)
		if i%100 == 0 {
			a.WriteString("same\n")
			b.WriteString("same\n")
		}
	}
	d := UnifiedDiff("a", "b", "head\n"+a.String()+"tail\n", "head\n"+b.String()+"tail\n", 3)
	got, err := applyUnified("head\n"+a.String()+"tail\n", d)
	if err != nil || got != "head\n"+b.String()+"tail\n" {
		t.Fatalf("fallback diff does not apply: %v", err)
	}
}

// TestUnifiedDiffHuge checks inputs over maxDiffLines, which the library
// cannot encode (it panics beyond 1,112,060 distinct lines): they are shown
// as removed and re-added.
func TestUnifiedDiffHuge(t *testing.T) {
	const n = 560_000 // 1,120,000 distinct lines in all
	var a, b strings.Builder
	for i := range n {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
	}
	d := UnifiedDiff("a", "b", a.String(), b.String(), 3)
	if !strings.HasPrefix(d, fmt.Sprintf("--- a\n+++ b\n@@ -1,%d +1,%d @@\n", n, n)) || changedLines(d) != 2*n {
		t.Fatalf("huge diff: %d changed lines, starts %.80q", changedLines(d), d)
	}
	if got, err := applyUnified(a.String(), d); err != nil || got != b.String() {
		t.Fatalf("huge diff does not apply: %v", err)
	}
}

func BenchmarkUnifiedDiff(b *testing.B) {
	r := rand.New(rand.NewSource(2))
	var x, y strings.Builder
	for i := 0; i < 5000; i++ {
		line := fmt.Sprintf("key%d: value%d\n", i, r.Intn(1000))
		x.WriteString(line)
		if r.Intn(50) == 0 {
			y.WriteString("changed: " + line)
		} else {
			y.WriteString(line)
		}
	}
	xs, ys := x.String(), y.String()
	b.ReportAllocs()
	for b.Loop() {
		UnifiedDiff("a", "b", xs, ys, 3)
	}
}
