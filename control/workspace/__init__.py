"""Workspaces: tenants, their deploy token, plan and subscription."""
