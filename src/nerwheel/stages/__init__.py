"""nerwheel.stages"""
