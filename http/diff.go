package http

import (
	"strconv"
	"strings"
)

// maxDiffCost bounds the edit distance the diff searches for a minimal
// script (memory grows with its square). Beyond it the differing middle of
// the inputs is shown as removed and re-added: still a correct diff, just
// not a minimal one.
const maxDiffCost = 1024

// UnifiedDiff returns a unified diff turning text a into text b, comparing
// lines, with ctx lines of context around changes (diff -u style). It is ""
// when a and b are equal. A last line without a newline is marked
// "\ No newline at end of file".
func UnifiedDiff(fromLabel, toLabel, a, b string, ctx int) string {
	if a == b {
		return ""
	}
	if ctx < 0 {
		ctx = 0
	}
	al, bl := splitLines(a), splitLines(b)
	ops := diffLines(al, bl)

	var sb strings.Builder
	sb.WriteString("--- " + fromLabel + "\n+++ " + toLabel + "\n")
	for i := 0; i < len(ops); {
		if ops[i].kind == ' ' {
			i++
			continue
		}
		start := max(i-ctx, 0)
		j := i
		var end int
		for {
			for j < len(ops) && ops[j].kind != ' ' {
				j++
			}
			k := j
			for k < len(ops) && ops[k].kind == ' ' {
				k++
			}
			if k < len(ops) && k-j <= 2*ctx {
				j = k
				continue
			}
			end = min(j+ctx, len(ops))
			break
		}
		writeHunk(&sb, ops[start:end], al, bl)
		i = end
	}
	return sb.String()
}

type diffOp struct {
	kind byte // ' ' same, '-' only in a, '+' only in b
	a, b int  // positions in a and b when the op happens
}

func writeHunk(sb *strings.Builder, ops []diffOp, al, bl []string) {
	var na, nb int
	for _, op := range ops {
		if op.kind != '+' {
			na++
		}
		if op.kind != '-' {
			nb++
		}
	}
	rng := func(pos, n int) string {
		if n == 0 {
			return strconv.Itoa(pos) + ",0"
		}
		if n == 1 {
			return strconv.Itoa(pos + 1)
		}
		return strconv.Itoa(pos+1) + "," + strconv.Itoa(n)
	}
	sb.WriteString("@@ -" + rng(ops[0].a, na) + " +" + rng(ops[0].b, nb) + " @@\n")
	for _, op := range ops {
		line := ""
		switch op.kind {
		case '+':
			line = bl[op.b]
		default:
			line = al[op.a]
		}
		sb.WriteByte(op.kind)
		sb.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			sb.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// splitLines splits s after each newline; the last line may lack one.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// diffLines returns the edit script from al to bl: common prefix and suffix
// are matched directly, the middle by Myers' O(ND) algorithm.
func diffLines(al, bl []string) []diffOp {
	// Intern lines so the inner loop compares ints.
	ids := map[string]int{}
	intern := func(ls []string) []int {
		out := make([]int, len(ls))
		for i, l := range ls {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	a, b := intern(al), intern(bl)

	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ops := make([]diffOp, 0, len(a)+len(b))
	for i := 0; i < pre; i++ {
		ops = append(ops, diffOp{' ', i, i})
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	mid := myers(ma, mb)
	if mid == nil {
		for i := range ma {
			mid = append(mid, diffOp{'-', i, 0})
		}
		for j := range mb {
			mid = append(mid, diffOp{'+', len(ma), j})
		}
	}
	for _, op := range mid {
		ops = append(ops, diffOp{op.kind, op.a + pre, op.b + pre})
	}
	for i := 0; i < suf; i++ {
		ops = append(ops, diffOp{' ', len(a) - suf + i, len(b) - suf + i})
	}
	return ops
}

// myers returns a shortest edit script from a to b, or nil when its cost
// exceeds maxDiffCost (and a and b are not both empty).
func myers(a, b []int) []diffOp {
	n, m := len(a), len(b)
	if n == 0 && m == 0 {
		return []diffOp{}
	}
	maxD := n + m
	off := maxD + 1
	v := make([]int, 2*maxD+3)
	var trace [][]int
	for d := 0; d <= maxD; d++ {
		if d > maxDiffCost {
			return nil
		}
		// Snapshot v[-d..d] as left by step d-1, for the backtrack.
		snap := make([]int, 2*d+1)
		copy(snap, v[off-d:off+d+1])
		trace = append(trace, snap)
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1] // step down: insert from b
			} else {
				x = v[off+k-1] + 1 // step right: delete from a
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				return backtrack(trace, d, n, m)
			}
		}
	}
	return nil
}

func backtrack(trace [][]int, dmax, n, m int) []diffOp {
	var rev []diffOp
	x, y := n, m
	for d := dmax; d > 0; d-- {
		vd := trace[d]
		get := func(k int) int { return vd[k+d] }
		k := x - y
		var prevK int
		if k == -d || (k != d && get(k-1) < get(k+1)) {
			prevK = k + 1
		} else {
			prevK = k - 1
		}
		prevX := get(prevK)
		prevY := prevX - prevK
		for x > prevX && y > prevY {
			x--
			y--
			rev = append(rev, diffOp{' ', x, y})
		}
		if x == prevX {
			y--
			rev = append(rev, diffOp{'+', x, y})
		} else {
			x--
			rev = append(rev, diffOp{'-', x, y})
		}
	}
	for x > 0 && y > 0 {
		x--
		y--
		rev = append(rev, diffOp{' ', x, y})
	}
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	return rev
}
