"""Notification channels: CRUD, test sends and delivery history."""
