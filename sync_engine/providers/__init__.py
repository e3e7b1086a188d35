"""Provider clients, their shared HTTP layer, and the export-file parser."""
