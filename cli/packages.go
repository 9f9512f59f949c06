package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

func (a *app) packagesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "packages",
		Aliases: []string{"package", "pkg"},
		Short:   "Upload signed agent packages and offer them to agents (upgrade, downgrade)",
	}
	cmd.AddCommand(a.packagesListCommand(), a.packagesUploadCommand(), a.packagesShowCommand(), a.packagesDownloadCommand(),
		a.packagesDeleteCommand(), a.packagesKeysCommand(), a.packagesAssignCommand(), a.packagesAssignmentsCommand(),
		a.packagesUnassignCommand(), a.packagesKeygenCommand(), a.packagesSignCommand())
	return cmd
}

func (a *app) packagesListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List package versions",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			list, err := a.client().Packages(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.PackagesResponse{Packages: list})
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No packages found.")
				return nil
			}
			rows := make([][]string, 0, len(list))
			for _, p := range list {
				rows = append(rows, []string{p.Name, p.Version, string(p.Type), strconv.FormatInt(p.Size, 10), shortHash(p.Hash), p.SignedBy, when(p.CreatedAt)})
			}
			return table(w, []string{"NAME", "VERSION", "TYPE", "SIZE", "SHA256", "SIGNED BY", "UPLOADED"}, rows)
		}),
	}
}

func (a *app) packagesUploadCommand() *cobra.Command {
	var file, typ, sig, sigFile string
	cmd := &cobra.Command{
		Use:   "upload NAME VERSION -f FILE",
		Short: "Upload a package version (the server signs it unless a signature is given)",
		Long: `Upload FILE as VERSION of package NAME. The SHA-256 of the file is computed
here and sent along, so a corrupted transfer is refused by the server.
Without --signature the server signs the package with its own key; with it,
the signature (base64 ed25519 over the raw SHA-256, see "packages sign")
must verify against a key the server trusts.`,
		Args: cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := validName("package", args[0]); err != nil {
				return err
			}
			if err := steward.ValidateVersion(args[1]); err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			if file == "" {
				return usagef("-f FILE is required")
			}
			sum, err := fileHash(file)
			if err != nil {
				return err
			}
			p := &steward.Package{Name: args[0], Version: args[1], Type: steward.PackageType(typ), Hash: sum}
			if sigFile != "" {
				b, err := os.ReadFile(sigFile)
				if err != nil {
					return err
				}
				sig = strings.TrimSpace(string(b))
			}
			if sig != "" {
				if p.Signature, err = base64.StdEncoding.DecodeString(sig); err != nil {
					return usagef("--signature must be base64")
				}
			}
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			out, err := a.client().UploadPackage(cmd.Context(), p, f)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Uploaded %s %s (%s, %d bytes, sha256 %x, signed by %s).\n", out.Name, out.Version, out.Type, out.Size, out.Hash, out.SignedBy)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "package file (required)")
	cmd.Flags().StringVar(&typ, "type", "top_level", "top_level (the agent itself) or addon")
	cmd.Flags().StringVar(&sig, "signature", "", "external signature (base64)")
	cmd.Flags().StringVar(&sigFile, "signature-file", "", "file holding the external signature (base64)")
	return cmd
}

func fileHash(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (a *app) packagesShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME VERSION",
		Short: "Show a package version",
		Args:  cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			p, err := a.client().Package(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, p)
			}
			fmt.Fprintf(w, "Name:       %s\nVersion:    %s\nType:       %s\nSize:       %d\nSHA-256:    %x\nSigned by:  %s\nSignature:  %s\nUploaded:   %s\n",
				p.Name, p.Version, p.Type, p.Size, p.Hash, p.SignedBy, base64.StdEncoding.EncodeToString(p.Signature), when(p.CreatedAt))
			return nil
		}),
	}
}

func (a *app) packagesDownloadCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "download NAME VERSION -f FILE",
		Short: "Download a package version's content and check its hash",
		Args:  cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("-f FILE is required")
			}
			c := a.client()
			p, err := c.Package(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			tmp := file + ".part"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			h := sha256.New()
			err = c.DownloadPackage(cmd.Context(), args[0], args[1], io.MultiWriter(f, h))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if sum := h.Sum(nil); string(sum) != string(p.Hash) {
				return fmt.Errorf("hash mismatch: downloaded sha256 %x, package has %x", sum, p.Hash)
			}
			if err := os.Rename(tmp, file); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Downloaded %s %s to %s (%d bytes, sha256 verified).\n", p.Name, p.Version, file, p.Size)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "where to write the content (required)")
	return cmd
}

func (a *app) packagesDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME VERSION",
		Short: "Delete a package version (refused while a package assignment offers it)",
		Args:  cobra.ExactArgs(2),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeletePackage(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted %s %s.\n", args[0], args[1])
			return nil
		}),
	}
}

func (a *app) packagesKeysCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keys",
		Short: "Show the public keys packages are signed with (put them in supervisors' packages.trusted_keys)",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			keys, err := a.client().PackageKeys(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.PackageKeysResponse{Keys: keys})
			}
			rows := make([][]string, 0, len(keys))
			for _, k := range keys {
				kind := "trusted"
				if k.Server {
					kind = "server"
				}
				rows = append(rows, []string{k.ID, kind, base64.StdEncoding.EncodeToString(k.PublicKey)})
			}
			return table(w, []string{"ID", "KIND", "PUBLIC KEY"}, rows)
		}),
	}
}

func (a *app) packagesAssignCommand() *cobra.Command {
	var refs []string
	var selector, agent string
	var priority int
	cmd := &cobra.Command{
		Use:   "assign NAME --package PKG@VERSION (--selector SEL | --agent ID)",
		Short: "Offer package versions to agents; assign another version to upgrade or downgrade",
		Args:  cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			pa := &steward.PackageAssignment{Name: args[0], Selector: selector, Priority: priority}
			for _, r := range refs {
				name, version, ok := strings.Cut(r, "@")
				if !ok || name == "" || version == "" {
					return usagef("--package %q: use NAME@VERSION", r)
				}
				pa.Packages = append(pa.Packages, steward.PackageRef{Name: name, Version: version})
			}
			if agent != "" {
				id, err := steward.ParseInstanceUID(agent)
				if err != nil {
					return usagef("%s", steward.ErrorMessage(err))
				}
				pa.AgentID = &id
			}
			if err := pa.Validate(); err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			out, err := a.client().PutPackageAssignment(cmd.Context(), pa)
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Package assignment %s saved: %s to %s.\n", out.Name, refList(out.Packages), target(out))
			return nil
		}),
	}
	cmd.Flags().StringArrayVar(&refs, "package", nil, "a package version NAME@VERSION (repeat)")
	cmd.Flags().StringVar(&selector, "selector", "", "label selector of the agents")
	cmd.Flags().StringVar(&agent, "agent", "", "one agent's instance uid")
	cmd.Flags().IntVar(&priority, "priority", 0, "higher wins when assignments offer the same package")
	return cmd
}

func refList(refs []steward.PackageRef) string {
	s := make([]string, 0, len(refs))
	for _, r := range refs {
		s = append(s, r.Name+"@"+r.Version)
	}
	return strings.Join(s, ", ")
}

func target(a *steward.PackageAssignment) string {
	if a.AgentID != nil {
		return "agent " + a.AgentID.String()
	}
	return "agents matching " + a.Selector
}

func (a *app) packagesAssignmentsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "assignments",
		Short: "List package assignments",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			list, err := a.client().PackageAssignments(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if a.structured() {
				return a.print(w, stewardhttp.PackageAssignmentsResponse{Assignments: list})
			}
			if len(list) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No package assignments found.")
				return nil
			}
			rows := make([][]string, 0, len(list))
			for _, pa := range list {
				rows = append(rows, []string{pa.Name, refList(pa.Packages), target(pa), strconv.Itoa(pa.Priority), when(pa.UpdatedAt)})
			}
			return table(w, []string{"NAME", "PACKAGES", "TARGET", "PRIORITY", "UPDATED"}, rows)
		}),
	}
}

func (a *app) packagesUnassignCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "unassign NAME",
		Short: "Delete a package assignment",
		Args:  cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeletePackageAssignment(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Package assignment %s deleted.\n", args[0])
			return nil
		}),
	}
}

const keyPEMType = "STEWARD PACKAGE SIGNING KEY" // the 32-byte ed25519 seed

func (a *app) packagesKeygenCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "keygen -f KEYFILE",
		Short: "Make an ed25519 key for signing packages outside the server",
		Long: `Write a new ed25519 private key to KEYFILE (mode 0600) and print its public
key, to give the server (--trusted-package-keys) and supervisors
(packages.trusted_keys).`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("-f KEYFILE is required")
			}
			pub, priv, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if err := pem.Encode(f, &pem.Block{Type: keyPEMType, Bytes: priv.Seed()}); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Public key (id %s):\n%s\n", steward.PackageKeyID(pub), base64.StdEncoding.EncodeToString(pub))
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "where to write the private key (required; must not exist)")
	return cmd
}

func (a *app) packagesSignCommand() *cobra.Command {
	var file, key string
	cmd := &cobra.Command{
		Use:   "sign -f FILE --key KEYFILE",
		Short: "Print the signature of a package file (base64 ed25519 over its SHA-256)",
		Args:  cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if file == "" || key == "" {
				return usagef("-f FILE and --key KEYFILE are required")
			}
			b, err := os.ReadFile(key)
			if err != nil {
				return err
			}
			blk, _ := pem.Decode(b)
			if blk == nil || blk.Type != keyPEMType || len(blk.Bytes) != ed25519.SeedSize {
				return fmt.Errorf("%s is not a key made by `steward packages keygen`", key)
			}
			sum, err := fileHash(file)
			if err != nil {
				return err
			}
			sig := steward.SignPackageHash(ed25519.NewKeyFromSeed(blk.Bytes), sum)
			fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(sig))
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "package file (required)")
	cmd.Flags().StringVar(&key, "key", "", "private key file from `steward packages keygen` (required)")
	return cmd
}
