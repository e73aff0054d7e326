"""Content: campaigns and newsletters as written, rendering, checks, sample previews."""
