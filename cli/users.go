package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stewardhq/steward"
	stewardhttp "github.com/stewardhq/steward/http"
)

// usersCommand manages the people who sign in (admin role).
func (a *app) usersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Aliases: []string{"user"}, Short: "Manage the people who sign in and their roles (viewer, operator, admin)"}
	list := &cobra.Command{Use: "list", Short: "List users", Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, args []string) error {
			us, err := a.client().Users(cmd.Context())
			if err != nil {
				return err
			}
			if a.structured() {
				return a.print(cmd.OutOrStdout(), stewardhttp.UsersResponse{Users: us})
			}
			rows := [][]string{}
			for _, u := range us {
				state, via := "active", "password"
				if u.Disabled {
					state = "disabled"
				}
				if u.SSO() {
					via = "sso " + u.Issuer
				}
				rows = append(rows, []string{u.Name, string(u.Role), state, via, when(u.CreatedAt), when(u.LastLogin)})
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "ROLE", "STATE", "SIGNS IN WITH", "CREATED", "LAST LOGIN"}, rows)
		})}

	var role, passwordFile string
	create := &cobra.Command{Use: "create NAME", Short: "Create a user with a password (prompted, or --password-file)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := steward.ParseRole(role); err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			return run(func(cmd *cobra.Command, args []string) error {
				pw, err := readPassword(cmd, passwordFile, "Password for "+args[0])
				if err != nil {
					return err
				}
				u, err := a.client().CreateUser(cmd.Context(), stewardhttp.CreateUserRequest{Name: args[0], Role: steward.Role(role), Password: pw})
				if err != nil {
					return err
				}
				if a.structured() {
					return a.print(cmd.OutOrStdout(), u)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "User %s (%s) created.\n", u.Name, u.Role)
				return nil
			})(cmd, args)
		}}
	create.Flags().StringVar(&role, "role", "viewer", "role: viewer, operator or admin")
	create.Flags().StringVar(&passwordFile, "password-file", "", `read the password from this file ("-": standard input) instead of prompting`)

	setRole := &cobra.Command{Use: "set-role NAME ROLE", Short: "Change a user's role (applies to their open sessions at once)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := steward.ParseRole(args[1])
			if err != nil {
				return usagef("%s", steward.ErrorMessage(err))
			}
			return a.updateUser(cmd, args[0], steward.UserChange{Role: &r}, "role set to "+string(r))
		}}
	disable := &cobra.Command{Use: "disable NAME", Short: "Disable a user: their sessions end and they cannot log in", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.updateUser(cmd, args[0], steward.UserChange{Disabled: ptrTo(true)}, "disabled")
		}}
	enable := &cobra.Command{Use: "enable NAME", Short: "Enable a disabled user", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.updateUser(cmd, args[0], steward.UserChange{Disabled: ptrTo(false)}, "enabled")
		}}
	var newPasswordFile string
	setPassword := &cobra.Command{Use: "set-password NAME", Short: "Give a user a new password (their other sessions end)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, newPasswordFile, "New password for "+args[0])
			if err != nil {
				return &runError{err}
			}
			return a.updateUser(cmd, args[0], steward.UserChange{Password: &pw}, "password changed")
		}}
	setPassword.Flags().StringVar(&newPasswordFile, "password-file", "", `read the password from this file ("-": standard input) instead of prompting`)
	del := &cobra.Command{Use: "delete NAME", Short: "Delete a user; their sessions end", Args: cobra.ExactArgs(1),
		RunE: run(func(cmd *cobra.Command, args []string) error {
			if err := a.client().DeleteUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "User "+args[0]+" deleted.")
			return nil
		})}
	cmd.AddCommand(list, create, setRole, disable, enable, setPassword, del)
	return cmd
}

func ptrTo[T any](v T) *T { return &v }

// updateUser applies c to user name and reports what was done.
func (a *app) updateUser(cmd *cobra.Command, name string, c steward.UserChange, done string) error {
	return run(func(cmd *cobra.Command, args []string) error {
		u, err := a.client().UpdateUser(cmd.Context(), name, c)
		if err != nil {
			return err
		}
		if a.structured() {
			return a.print(cmd.OutOrStdout(), u)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "User %s: %s.\n", u.Name, done)
		return nil
	})(cmd, nil)
}

// readPassword returns a password from file (its first line; "-" is
// standard input) or, without a file, asks for it twice on the terminal
// without echoing it. Without a file or a terminal it fails: a password is
// never taken from the command line, where other users and shell history
// would see it.
func readPassword(cmd *cobra.Command, file, prompt string) (string, error) {
	if file != "" {
		var r io.Reader = cmd.InOrStdin()
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				return "", fmt.Errorf("--password-file: %w", err)
			}
			defer f.Close()
			r = f
		}
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("--password-file: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", fmt.Errorf("--password-file %s: empty password", file)
		}
		return pw, nil
	}
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", fmt.Errorf("no terminal to ask for the password: use --password-file FILE (or - for standard input)")
	}
	ask := func(p string) (string, error) {
		fmt.Fprint(cmd.ErrOrStderr(), p+": ")
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		return string(b), err
	}
	pw, err := ask(prompt)
	if err != nil {
		return "", err
	}
	again, err := ask("Again")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", fmt.Errorf("the passwords differ")
	}
	return pw, nil
}
