"""The Pyramid client portal example; run it with: scripts/example pyramid"""
