"""The Bottle client portal example; run it with: scripts/example bottle"""
