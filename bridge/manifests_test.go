package bridge

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestManifests checks the documented manifests in deploy/kubernetes: every
// document parses, both RBAC variants grant what the bridge calls (and no
// write verb it does not use), and the Deployment runs as the
// ServiceAccount the bindings name, with the token Secret mounted where
// --token-file points.
func TestManifests(t *testing.T) {
	dir := filepath.Join("..", "deploy", "kubernetes")
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	type object = map[string]any
	byKind := map[string][]object{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o object
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if o == nil {
				continue
			}
			kind, _ := o["kind"].(string)
			if kind == "" {
				t.Errorf("%s: document without kind", p)
			}
			byKind[kind] = append(byKind[kind], o)
		}
	}
	str := func(o any, path ...string) string {
		for _, k := range path {
			m, _ := o.(map[string]any)
			o = m[k]
		}
		s, _ := o.(string)
		return s
	}
	list := func(o any, path ...string) []any {
		for _, k := range path {
			m, _ := o.(map[string]any)
			o = m[k]
		}
		l, _ := o.([]any)
		return l
	}

	want := map[string][]string{
		"opentelemetry.io/" + Resource: {"get", "list", "watch", "update"},
		"/pods":                        {"get", "list", "watch"},
	}
	// grants lists the verbs of a role by "group/resource" (plus
	// "[name,…]" when limited to resourceNames).
	grants := func(role any) map[string][]string {
		got := map[string][]string{}
		for _, r := range list(role, "rules") {
			names := ""
			for _, n := range list(r, "resourceNames") {
				names += "," + n.(string)
			}
			if names != "" {
				names = "[" + names[1:] + "]"
			}
			for _, g := range list(r, "apiGroups") {
				for _, res := range list(r, "resources") {
					for _, v := range list(r, "verbs") {
						k := g.(string) + "/" + res.(string) + names
						got[k] = append(got[k], v.(string))
					}
				}
			}
		}
		return got
	}
	check := func(what string, got, want map[string][]string) {
		for res, verbs := range want {
			slices.Sort(verbs)
			g := got[res]
			slices.Sort(g)
			if !slices.Equal(g, verbs) {
				t.Errorf("%s grants %s %v, want %v", what, res, g, verbs)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s grants extra resources: %v", what, got)
		}
	}
	rolesNamed := func(kind, name string) []object {
		var out []object
		for _, o := range byKind[kind] {
			if str(o, "metadata", "name") == name {
				out = append(out, o)
			}
		}
		return out
	}
	for _, kind := range []string{"ClusterRole", "Role"} {
		roles := rolesNamed(kind, FieldManager)
		if len(roles) != 1 {
			t.Fatalf("%d %s documents named %s, want 1", len(roles), kind, FieldManager)
		}
		check(kind, grants(roles[0]), want)
	}
	// Leader election: the Lease in the bridge's own namespace.
	le := rolesNamed("Role", FieldManager+"-leader-election")
	if len(le) != 1 {
		t.Fatalf("%d leader election Roles, want 1", len(le))
	}
	check("leader election Role", grants(le[0]), map[string][]string{
		"coordination.k8s.io/leases":                       {"create"},
		"coordination.k8s.io/leases[" + FieldManager + "]": {"get", "update"},
	})

	sas := byKind["ServiceAccount"]
	if len(sas) != 1 {
		t.Fatalf("%d ServiceAccounts", len(sas))
	}
	sa, saNS := str(sas[0], "metadata", "name"), str(sas[0], "metadata", "namespace")
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, b := range byKind[kind] {
			s := list(b, "subjects")
			if len(s) != 1 || str(s[0], "name") != sa || str(s[0], "namespace") != saNS {
				t.Errorf("%s subjects = %v, want %s/%s", kind, s, saNS, sa)
			}
		}
	}

	if ns := str(le[0], "metadata", "namespace"); ns != saNS {
		t.Errorf("leader election Role in namespace %q, want the bridge's %q", ns, saNS)
	}

	deps := byKind["Deployment"]
	if len(deps) != 1 {
		t.Fatalf("%d Deployments", len(deps))
	}
	d := deps[0]
	if str(d, "metadata", "namespace") != saNS || str(d, "spec", "template", "spec", "serviceAccountName") != sa {
		t.Error("Deployment does not run as the bridge's ServiceAccount in its namespace")
	}
	containers := list(d, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("%d containers", len(containers))
	}
	var tokenFile string
	elect := false
	for _, a := range list(containers[0], "args") {
		if v, ok := strings.CutPrefix(a.(string), "--token-file="); ok {
			tokenFile = v
		}
		elect = elect || a == "--leader-elect"
	}
	if replicas, _ := d["spec"].(map[string]any)["replicas"].(int); replicas < 2 || !elect {
		t.Errorf("Deployment: %d replicas, --leader-elect %v; want 2 leader-elected replicas", replicas, elect)
	}
	mounted := false
	for _, m := range list(containers[0], "volumeMounts") {
		if strings.HasPrefix(tokenFile, str(m, "mountPath")+"/") {
			for _, v := range list(d, "spec", "template", "spec", "volumes") {
				if str(v, "name") == str(m, "name") && str(v, "secret", "secretName") == str(byKind["Secret"][0], "metadata", "name") {
					mounted = true
				}
			}
		}
	}
	if tokenFile == "" || !mounted {
		t.Errorf("--token-file %q is not in a mounted volume of the token Secret", tokenFile)
	}
}
