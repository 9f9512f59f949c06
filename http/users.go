package http

import (
	"context"
	"net/http"
	"net/url"

	"github.com/stewardhq/steward"
)

// Users are managed by admins only (requiredRole); the users service
// audits every change itself, without the password.
func (s *Server) registerUserRoutes() {
	s.handle("GET /api/v1/users", s.handleUsers, authed)
	s.handle("POST /api/v1/users", s.handleCreateUser, authed)
	s.handle("GET /api/v1/users/{name}", s.handleUser, authed)
	s.handle("PATCH /api/v1/users/{name}", s.handleUpdateUser, authed)
	s.handle("DELETE /api/v1/users/{name}", s.handleDeleteUser, authed)
}

// UsersResponse lists users by name.
type UsersResponse struct {
	Users []*steward.User `json:"users"`
}

// CreateUserRequest is the body of POST /api/v1/users.
type CreateUserRequest struct {
	Name     string       `json:"name"`
	Role     steward.Role `json:"role"`
	Password string       `json:"password"`
}

// userService returns the users service, or ENOTIMPLEMENTED (501).
func (s *Server) userService() (steward.UserService, error) {
	if s.auth.users == nil {
		return nil, steward.Errorf(steward.ENOTIMPLEMENTED, "users are not available on this server")
	}
	return s.auth.users, nil
}

func (s *Server) handleUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.userService()
	if err != nil {
		return err
	}
	list, err := us.Users(r.Context())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*steward.User{}
	}
	writeJSON(w, http.StatusOK, UsersResponse{Users: list})
	return nil
}

func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) error {
	us, err := s.userService()
	if err != nil {
		return err
	}
	var req CreateUserRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	u, err := us.CreateUser(r.Context(), req.Name, req.Role, req.Password)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/users/"+url.PathEscape(u.Name))
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) handleUser(w http.ResponseWriter, r *http.Request) error {
	us, err := s.userService()
	if err != nil {
		return err
	}
	u, err := us.User(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

// handleUpdateUser applies a steward.UserChange (role, disabled, password;
// absent fields stay). An admin cannot disable or demote themselves, which
// could leave nobody to undo it.
func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request) error {
	us, err := s.userService()
	if err != nil {
		return err
	}
	var c steward.UserChange
	if err := decodeJSON(r, &c); err != nil {
		return err
	}
	name := r.PathValue("name")
	if p := PrincipalFrom(r.Context()); p != nil && p.Method == "session" && p.Name == name &&
		(c.Disabled != nil && *c.Disabled || c.Role != nil && *c.Role != steward.RoleAdmin) {
		return steward.Errorf(steward.EINVALID, "you cannot disable yourself or take away your own admin role; ask another admin")
	}
	u, err := us.UpdateUser(r.Context(), name, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u)
	return nil
}

func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) error {
	us, err := s.userService()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if p := PrincipalFrom(r.Context()); p != nil && p.Method == "session" && p.Name == name {
		return steward.Errorf(steward.EINVALID, "you cannot delete yourself; ask another admin")
	}
	if err := us.DeleteUser(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// CreateUser creates a local user.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest) (*steward.User, error) {
	var out steward.User
	_, err := c.do(ctx, "POST", "/api/v1/users", nil, req, &out)
	return &out, err
}

// Users lists users.
func (c *Client) Users(ctx context.Context) ([]*steward.User, error) {
	var out UsersResponse
	_, err := c.do(ctx, "GET", "/api/v1/users", nil, nil, &out)
	return out.Users, err
}

// UpdateUser changes a user's role, disabled flag or password.
func (c *Client) UpdateUser(ctx context.Context, name string, ch steward.UserChange) (*steward.User, error) {
	var out steward.User
	_, err := c.do(ctx, "PATCH", "/api/v1/users/"+url.PathEscape(name), nil, ch, &out)
	return &out, err
}

// DeleteUser removes a user.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	_, err := c.do(ctx, "DELETE", "/api/v1/users/"+url.PathEscape(name), nil, nil, nil)
	return err
}
