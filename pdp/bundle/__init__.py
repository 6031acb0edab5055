"""Policy bundles: files on disk -> compiled cedarpy handles -> the active snapshot."""
