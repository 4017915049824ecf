"""nerwheel.components"""
