"""Pure domain types shared by every component: no I/O, no imports from other tenanttls packages
except `tenanttls.errors`."""
